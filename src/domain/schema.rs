//! The forms of the management API's values, as the OpenAPI document states them: the types
//! here only document (through `value_type`). Each mirrors a check the server makes, in
//! `validate`, `key` or the services; the Schemathesis run of CI holds the two together: a value
//! of the documented form is accepted, any other refused.

#![expect(
    dead_code,
    reason = "the types only document the forms; nothing builds them"
)]

use utoipa::ToSchema;

/// A scope or token type name: lowercase letters, digits and `:_-.`, 1 to 64 characters, starting
/// with a letter or digit.
#[derive(ToSchema)]
#[schema(pattern = r"^[a-z0-9][a-z0-9:_.-]{0,63}$")]
pub struct NameToken(String);

/// An IPv4 or IPv6 address.
#[derive(ToSchema)]
#[schema(
    pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,6})?|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,5})?|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,4})?|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,3})?|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,2})?|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,1})?|([0-9a-fA-F]{1,4}:){5}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,0})?|([0-9a-fA-F]{1,4}:){6}[0-9a-fA-F]{1,4}::|([0-9a-fA-F]{1,4}:){6}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|::([0-9a-fA-F]{1,4}:){0,5}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,4}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,2}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,1}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,0}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}))$"
)]
pub struct IpAddress(String);

/// An IPv4 or IPv6 address, or a CIDR block (`203.0.113.0/24`, `2001:db8::/32`).
#[derive(ToSchema)]
#[schema(
    pattern = r"^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}(/(3[0-2]|[12]?[0-9]))?|(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,6})?|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,5})?|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,4})?|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,3})?|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,2})?|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,1})?|([0-9a-fA-F]{1,4}:){5}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,0})?|([0-9a-fA-F]{1,4}:){6}[0-9a-fA-F]{1,4}::|([0-9a-fA-F]{1,4}:){6}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|::([0-9a-fA-F]{1,4}:){0,5}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,4}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,2}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,1}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,0}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$"
)]
pub struct IpNetwork(String);

/// An uppercase HTTP method.
#[derive(ToSchema)]
#[schema(pattern = r"^[A-Z]{1,16}$")]
pub struct HttpMethod(String);

/// An expiry choice.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Expiry {
    #[schema(rename = "1y")]
    OneYear,
    #[schema(rename = "2y")]
    TwoYears,
    #[schema(rename = "5y")]
    FiveYears,
    Never,
}

/// An upstream URL: `http://` or `https://`, a host name, an IPv4 or a bracketed IPv6 address, an
/// optional port and an optional path; no user, query or fragment.
#[derive(ToSchema)]
#[schema(
    pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[(([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,6})?|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,5})?|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,4})?|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,3})?|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,2})?|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,1})?|([0-9a-fA-F]{1,4}:){5}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4}){0,0})?|([0-9a-fA-F]{1,4}:){6}[0-9a-fA-F]{1,4}::|([0-9a-fA-F]{1,4}:){6}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|::([0-9a-fA-F]{1,4}:){0,5}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,4}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){1}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){2}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,2}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){3}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,1}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}|([0-9a-fA-F]{1,4}:){4}[0-9a-fA-F]{1,4}::([0-9a-fA-F]{1,4}:){0,0}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})\])(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}|0))?(/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})*)?$"
)]
pub struct Upstream(String);

/// A host name the gateway serves an API for: lowercase letters, digits, `.` and `-`, starting and
/// ending with a letter or digit, at most 253 characters (no port).
#[derive(ToSchema)]
#[schema(pattern = r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")]
pub struct Hostname(String);

/// A gateway route's path prefix: `/` followed by up to 1023 URL path characters.
#[derive(ToSchema)]
#[schema(pattern = r"^/([A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2}){0,1023}$")]
pub struct RoutePath(String);

/// A member's role.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RoleName {
    Owner,
    Admin,
    Developer,
    Viewer,
}

/// A member's status as it may be set (deleting is `DELETE /v1/users/{id}`).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MemberStatus {
    Active,
    Disabled,
}

/// The organization's billing status.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum BillingStatus {
    Active,
    PastDue,
}

/// Which keys `GET /v1/keys` lists.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum KeyStatusFilter {
    Active,
    Revoked,
    Expired,
    All,
}

/// A resource a request reaches: `type:id`.
#[derive(ToSchema)]
#[schema(pattern = r"^[a-z][a-z0-9_-]{0,31}:[A-Za-z0-9._:/@+-]{1,200}$")]
pub struct Resource(String);

/// A resource pattern a key carries: `type:id`, optionally ending in `*` to match any suffix.
#[derive(ToSchema)]
#[schema(
    pattern = r"^[a-z][a-z0-9_-]{0,31}:([A-Za-z0-9._:/@+-]{1,200}\*?|[A-Za-z0-9._:/@+-]{0,200}\*)$"
)]
pub struct ResourcePattern(String);

/// A member's kind.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MemberKind {
    Person,
    Service,
}

/// The id of an IP ACL.
#[derive(ToSchema)]
#[schema(pattern = r"^acl_[0-9a-f]{16}$")]
pub struct IpAclId(String);

/// The id of a key group.
#[derive(ToSchema)]
#[schema(pattern = r"^grp_[0-9a-f]{16}$")]
pub struct KeyGroupId(String);
