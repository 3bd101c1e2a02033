//! The check order of contract section 4, as pure functions over a key, its owner and its
//! organization. The first failing check answers; rate limit and quota come last and are stateful,
//! so the verifier runs them after [`check_key`] passes.

use std::net::IpAddr;

use super::model::{Api, Key, KeyStatus, Millis, Org, User, UserStatus, normalize_ip};

/// Why a presented key was refused. Each maps to one contract code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    MissingCredentials,
    Malformed(&'static str),
    UnknownKey,
    Revoked {
        disabled: bool,
    },
    Expired,
    OwnerDisabled,
    PlanInactive,
    IpNotAllowed,
    /// `expected`: the route's type, when it may be named (see [`Denial::naming_only`]).
    WrongTokenType {
        expected: Option<String>,
        actual: String,
    },
    /// `scope`: the missing scope, when it may be named (see [`Denial::naming_only`]).
    InsufficientScope {
        scope: Option<String>,
    },
    /// The key carries resource patterns and none matches the requested resource.
    ResourceNotAllowed,
    RateLimited(RateDecision),
    QuotaExceeded,
}

impl Denial {
    /// HTTP status the caller should answer with.
    pub fn status(&self) -> u16 {
        match self {
            Denial::MissingCredentials
            | Denial::Malformed(_)
            | Denial::UnknownKey
            | Denial::Revoked { .. }
            | Denial::Expired
            | Denial::OwnerDisabled => 401,
            Denial::PlanInactive
            | Denial::IpNotAllowed
            | Denial::WrongTokenType { .. }
            | Denial::InsufficientScope { .. }
            | Denial::ResourceNotAllowed => 403,
            Denial::RateLimited(_) | Denial::QuotaExceeded => 429,
        }
    }

    /// The problem+json `code` (contract section 4).
    pub fn code(&self) -> &'static str {
        match self {
            Denial::MissingCredentials => "missing_credentials",
            Denial::Malformed(_) => "malformed_credentials",
            Denial::UnknownKey => "unknown_key",
            Denial::Revoked { .. } => "key_revoked",
            Denial::Expired => "key_expired",
            Denial::OwnerDisabled => "owner_disabled",
            Denial::PlanInactive => "plan_inactive",
            Denial::IpNotAllowed => "ip_not_allowed",
            Denial::WrongTokenType { .. } => "wrong_token_type",
            Denial::InsufficientScope { .. } => "insufficient_scope",
            Denial::ResourceNotAllowed => "resource_not_allowed",
            Denial::RateLimited(_) => "rate_limited",
            Denial::QuotaExceeded => "quota_exceeded",
        }
    }

    /// The verify endpoint's `code` (contract section 5).
    pub fn verify_code(&self) -> &'static str {
        match self {
            Denial::MissingCredentials | Denial::Malformed(_) => "MALFORMED",
            Denial::UnknownKey => "NOT_FOUND",
            Denial::Revoked { .. } => "REVOKED",
            Denial::Expired => "EXPIRED",
            Denial::OwnerDisabled => "OWNER_DISABLED",
            Denial::PlanInactive => "PLAN_INACTIVE",
            Denial::IpNotAllowed => "IP_NOT_ALLOWED",
            Denial::WrongTokenType { .. } => "WRONG_TOKEN_TYPE",
            Denial::InsufficientScope { .. } => "INSUFFICIENT_SCOPE",
            Denial::ResourceNotAllowed => "RESOURCE_NOT_ALLOWED",
            Denial::RateLimited(_) => "RATE_LIMITED",
            Denial::QuotaExceeded => "QUOTA_EXCEEDED",
        }
    }

    /// A sentence for people. Never contains the key.
    pub fn detail(&self) -> String {
        match self {
            Denial::MissingCredentials => {
                "No API key was sent. Send it as 'Authorization: Bearer <key>'.".into()
            }
            Denial::Malformed(why) => format!("The API key is malformed: {why}."),
            Denial::UnknownKey => "This API key does not exist.".into(),
            Denial::Revoked { disabled: true } => "This API key has been disabled.".into(),
            Denial::Revoked { disabled: false } => "This API key has been revoked.".into(),
            Denial::Expired => "This API key has expired.".into(),
            Denial::OwnerDisabled => "The owner of this API key has been disabled.".into(),
            Denial::PlanInactive => {
                "The organization's plan does not include API access, API access is switched off, or billing is past due."
                    .into()
            }
            Denial::IpNotAllowed => {
                "This API key may not be used from this IP address.".into()
            }
            Denial::WrongTokenType {
                expected: Some(expected),
                actual,
            } => format!("This route needs a '{expected}' key; this key is of type '{actual}'."),
            Denial::WrongTokenType {
                expected: None,
                actual,
            } => format!("This route needs another type of key; this key is of type '{actual}'."),
            Denial::InsufficientScope { scope: Some(scope) } => {
                format!("This API key lacks the scope '{scope}'.")
            }
            Denial::InsufficientScope { scope: None } => {
                "This API key lacks a scope this request needs.".into()
            }
            Denial::ResourceNotAllowed => {
                "This API key has no access to the requested resource.".into()
            }
            Denial::RateLimited(d) => format!(
                "Rate limit of {} requests exceeded; retry in {} s.",
                d.limit,
                d.retry_after_s()
            ),
            Denial::QuotaExceeded => "This API key has used up its quota.".into(),
        }
    }
}

impl Denial {
    /// This refusal as told to a caller: it names the required scope or token type only when the
    /// key's API defines it. What a request asks for could be anything a client typed, a secret
    /// included, and is never repeated back otherwise.
    pub fn naming_only(self, api: &Api) -> Denial {
        match self {
            Denial::InsufficientScope { scope: Some(s) } if !api.has_scope(&s) => {
                Denial::InsufficientScope { scope: None }
            }
            Denial::WrongTokenType {
                expected: Some(e),
                actual,
            } if !api.token_types.contains(&e) => Denial::WrongTokenType {
                expected: None,
                actual,
            },
            other => other,
        }
    }
}

/// What a request asks of a key.
#[derive(Debug, Default, Clone)]
pub struct Requirements<'a> {
    pub client_ip: Option<IpAddr>,
    pub token_type: Option<&'a str>,
    /// The key's type must be one of these (a gateway route's types); empty: any.
    pub token_types: &'a [String],
    pub scopes: &'a [String],
    /// The resource the request reaches (`type:id`), checked against the key's patterns.
    pub resource: Option<&'a str>,
    /// Keys of the built-in management API are never refused for the plan.
    pub skip_plan: bool,
}

/// Runs the stateless checks, in contract order: key state, owner, plan, IP, token type, scope,
/// resource. The key's ACLs and groups count as resolved when it was read (`key.linked`).
pub fn check_key(
    key: &Key,
    owner: Option<&User>,
    org: &Org,
    plans_without_access: &[String],
    req: &Requirements<'_>,
    now: Millis,
) -> Result<(), Denial> {
    let owner_active = owner.is_some_and(|u| u.status == UserStatus::Active);
    match key.status(now) {
        KeyStatus::Active => {}
        // Disabling or deleting a member revokes their keys; while the member stays disabled or
        // deleted, the answer names that cause.
        KeyStatus::Revoked | KeyStatus::Deleted if !owner_active => {
            return Err(Denial::OwnerDisabled);
        }
        KeyStatus::Revoked | KeyStatus::Deleted => return Err(Denial::Revoked { disabled: false }),
        KeyStatus::Expired => return Err(Denial::Expired),
        KeyStatus::Disabled => return Err(Denial::Revoked { disabled: true }),
    }
    match owner {
        Some(u) if u.status == UserStatus::Active => {}
        _ => return Err(Denial::OwnerDisabled),
    }
    if !req.skip_plan && !org.has_api_access(plans_without_access) {
        return Err(Denial::PlanInactive);
    }
    if key.restricts_ip() {
        let allowed = req.client_ip.map(normalize_ip).is_some_and(|ip| {
            key.ip_allowlist
                .iter()
                .chain(&key.linked.acl_nets)
                .any(|net| net.contains(&ip) || net.contains(&normalize_ip_net_peer(ip)))
        });
        if !allowed {
            return Err(Denial::IpNotAllowed);
        }
    }
    if let Some(expected) = req.token_type {
        if expected != key.token_type {
            return Err(Denial::WrongTokenType {
                expected: Some(expected.to_owned()),
                actual: key.token_type.clone(),
            });
        }
    }
    if !req.token_types.is_empty() && !req.token_types.contains(&key.token_type) {
        // One type is named; of several, the detail says only that this one is not among them.
        let expected = match req.token_types {
            [only] => Some(only.clone()),
            _ => None,
        };
        return Err(Denial::WrongTokenType {
            expected,
            actual: key.token_type.clone(),
        });
    }
    for scope in req.scopes {
        if !key.has_scope(scope) {
            return Err(Denial::InsufficientScope {
                scope: Some(scope.clone()),
            });
        }
    }
    if let Some(resource) = req.resource {
        if !super::resource::allowed(&key.resources, resource) {
            return Err(Denial::ResourceNotAllowed);
        }
    }
    Ok(())
}

/// An IPv4 client also matches an allowlist entry written as IPv4-mapped IPv6.
fn normalize_ip_net_peer(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// The outcome of a rate-limit check, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// When the allowance is full again (Unix ms).
    pub reset_at: Millis,
    /// How long until the request would be allowed (ms), when refused.
    pub retry_after_ms: i64,
    pub now: Millis,
}

impl RateDecision {
    pub fn retry_after_s(&self) -> i64 {
        (self.retry_after_ms + 999) / 1000
    }

    pub fn reset_in_s(&self) -> i64 {
        ((self.reset_at - self.now).max(0) + 999) / 1000
    }
}

/// Generic cell rate algorithm: `requests` per `per_seconds`, with a burst of `requests`.
///
/// `tat_us` is the theoretical arrival time in microseconds (0 for a fresh limiter). Returns the
/// decision and the new TAT to store (unchanged when refused). The same arithmetic runs in Redis
/// when limits are shared between instances.
pub fn gcra(
    tat_us: i64,
    now_ms: Millis,
    requests: u32,
    per_seconds: u32,
    cost: u32,
) -> (RateDecision, i64) {
    let now_us = now_ms * 1000;
    let requests = requests.max(1);
    let interval = (i64::from(per_seconds) * 1_000_000 / i64::from(requests)).max(1);
    let window = interval * i64::from(requests);
    let base = tat_us.max(now_us);
    let new_tat = base + interval * i64::from(cost);
    let allowed = new_tat - now_us <= window;
    let (tat, retry_after_ms) = if allowed {
        (new_tat, 0)
    } else {
        (tat_us, ((new_tat - window - now_us) + 999) / 1000)
    };
    let used = (tat.max(now_us) - now_us + interval - 1) / interval;
    let remaining = (i64::from(requests) - used).clamp(0, i64::from(requests)) as u32;
    let decision = RateDecision {
        allowed,
        limit: requests,
        remaining,
        reset_at: tat.max(now_us).div_euclid(1000),
        retry_after_ms,
        now: now_ms,
    };
    (decision, tat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::*;

    pub(crate) fn org() -> Org {
        Org {
            id: "org_1".into(),
            name: "Acme".into(),
            plan: "pro".into(),
            api_access: true,
            billing_status: "active".into(),
            policies: Policies::default(),
            created_at: 0,
        }
    }

    fn user(status: UserStatus) -> User {
        User {
            id: "usr_1".into(),
            org_id: "org_1".into(),
            email: "a@example.com".into(),
            name: "A".into(),
            role: Role::Developer,
            status,
            kind: UserKind::Person,
            created_at: 0,
        }
    }

    fn key() -> Key {
        Key {
            id: "key_3f9a0c1e7b2d".into(),
            org_id: "org_1".into(),
            api_id: "api_1".into(),
            name: "k".into(),
            description: None,
            key_prefix: "kw_live_".into(),
            token_type: "batch".into(),
            environment: Environment::Live,
            scopes: vec!["transcripts:read".into()],
            ip_allowlist: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            expires_at: Some(10_000),
            enabled: true,
            hash: crate::domain::key::KeyHash([0; 32]),
            pepper_version: 1,
            owner_id: "usr_1".into(),
            created_by: "usr_1".into(),
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
            last_used_ip: None,
            rate_limit: None,
            quota: None,
            metadata: Default::default(),
            replaces: None,
            replaced_by: None,
            revoked_at: None,
            revoke_reason: None,
            deleted_at: None,
            exposed_at: None,
            recoverable: false,
            encrypted_secret: None,
            ip_acl_ids: Vec::new(),
            group_ids: Vec::new(),
            resources: Vec::new(),
            linked: Default::default(),
        }
    }

    fn req<'a>(ip: &str, ty: Option<&'a str>, scopes: &'a [String]) -> Requirements<'a> {
        Requirements {
            client_ip: Some(ip.parse().unwrap()),
            token_type: ty,
            token_types: &[],
            scopes,
            resource: None,
            skip_plan: false,
        }
    }

    #[test]
    fn acls_join_the_allowlist_and_fail_closed_when_unresolved() {
        let u = user(UserStatus::Active);
        let mut k = key();
        k.ip_allowlist.clear();
        k.ip_acl_ids = vec!["acl_1".into()];
        let check = |k: &Key, ip: &str| check_key(k, Some(&u), &org(), &[], &req(ip, None, &[]), 1);
        assert_eq!(check(&k, "198.51.100.1"), Err(Denial::IpNotAllowed));
        k.linked.acl_nets = vec!["198.51.100.0/24".parse().unwrap()];
        assert_eq!(check(&k, "198.51.100.1"), Ok(()));
        k.ip_allowlist = vec!["203.0.113.0/24".parse().unwrap()];
        assert_eq!(check(&k, "203.0.113.5"), Ok(()), "the union of both lists");
        assert_eq!(check(&k, "192.0.2.1"), Err(Denial::IpNotAllowed));
    }

    #[test]
    fn groups_add_scopes_and_resources_are_checked_after_scope() {
        let u = user(UserStatus::Active);
        let mut k = key();
        k.ip_allowlist.clear();
        let want = vec!["transcripts:write".to_string()];
        let mut r = req("203.0.113.1", None, &want);
        r.resource = Some("project:globex");
        k.resources = vec!["project:acme-*".into()];
        assert_eq!(
            check_key(&k, Some(&u), &org(), &[], &r, 1)
                .unwrap_err()
                .code(),
            "insufficient_scope",
            "scope before resource"
        );
        k.linked.group_scopes = vec!["transcripts:write".into()];
        assert_eq!(
            check_key(&k, Some(&u), &org(), &[], &r, 1).unwrap_err(),
            Denial::ResourceNotAllowed
        );
        r.resource = Some("project:acme-web");
        assert_eq!(check_key(&k, Some(&u), &org(), &[], &r, 1), Ok(()));
        assert_eq!(
            (
                Denial::ResourceNotAllowed.status(),
                Denial::ResourceNotAllowed.verify_code()
            ),
            (403, "RESOURCE_NOT_ALLOWED")
        );
    }

    #[test]
    fn an_active_key_within_every_limit_passes() {
        let scopes = vec!["transcripts:read".to_string()];
        let r = req("203.0.113.9", Some("batch"), &scopes);
        assert_eq!(
            check_key(&key(), Some(&user(UserStatus::Active)), &org(), &[], &r, 5),
            Ok(())
        );
    }

    #[test]
    fn a_route_of_several_token_types_takes_any_of_them_and_names_a_single_one() {
        let u = user(UserStatus::Active);
        let types =
            |t: &'static [&'static str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let check = |allowed: &[String]| {
            let r = Requirements {
                client_ip: Some("203.0.113.9".parse().unwrap()),
                token_types: allowed,
                ..Default::default()
            };
            check_key(&key(), Some(&u), &org(), &[], &r, 5)
        };
        assert_eq!(check(&[]), Ok(()));
        assert_eq!(check(&types(&["realtime", "batch"])), Ok(()));
        assert_eq!(
            check(&types(&["realtime"])),
            Err(Denial::WrongTokenType {
                expected: Some("realtime".into()),
                actual: "batch".into()
            })
        );
        assert_eq!(
            check(&types(&["realtime", "standard"])),
            Err(Denial::WrongTokenType {
                expected: None,
                actual: "batch".into()
            })
        );
    }

    #[test]
    fn checks_answer_in_contract_order() {
        let scopes = vec!["transcripts:write".to_string()];
        // Everything is wrong at once: the key state answers first.
        let mut k = key();
        k.revoked_at = Some(1);
        let mut o = org();
        o.billing_status = "past_due".into();
        let r = req("198.51.100.1", Some("realtime"), &scopes);
        let u = user(UserStatus::Disabled);
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err().code(),
            "owner_disabled",
            "a key revoked along with its disabled owner names the owner"
        );
        let active = user(UserStatus::Active);
        assert_eq!(
            check_key(&k, Some(&active), &o, &[], &r, 5)
                .unwrap_err()
                .code(),
            "key_revoked"
        );
        k.revoked_at = None;
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err().code(),
            "owner_disabled"
        );
        let u = user(UserStatus::Active);
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err().code(),
            "plan_inactive"
        );
        let o = org();
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err().code(),
            "ip_not_allowed"
        );
        let r = req("203.0.113.1", Some("realtime"), &scopes);
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err().code(),
            "wrong_token_type"
        );
        let r = req("203.0.113.1", Some("batch"), &scopes);
        let err = check_key(&k, Some(&u), &o, &[], &r, 5).unwrap_err();
        assert_eq!(err.code(), "insufficient_scope");
        assert!(err.detail().contains("transcripts:write"));
    }

    #[test]
    fn expiry_disable_and_grace_periods_follow_the_clock() {
        let u = user(UserStatus::Active);
        let r = req("203.0.113.1", None, &[]);
        let mut k = key();
        assert_eq!(
            check_key(&k, Some(&u), &org(), &[], &r, 10_000).unwrap_err(),
            Denial::Expired
        );
        k.expires_at = None;
        k.revoked_at = Some(500); // rotated with a grace period ending at 500
        assert!(check_key(&k, Some(&u), &org(), &[], &r, 499).is_ok());
        assert_eq!(
            check_key(&k, Some(&u), &org(), &[], &r, 500)
                .unwrap_err()
                .code(),
            "key_revoked"
        );
        k.revoked_at = None;
        k.enabled = false;
        let err = check_key(&k, Some(&u), &org(), &[], &r, 1).unwrap_err();
        assert_eq!(
            (err.code(), err.detail().contains("disabled")),
            ("key_revoked", true)
        );
    }

    #[test]
    fn ip_allowlists_match_ipv4_ipv6_and_mapped_addresses() {
        let u = user(UserStatus::Active);
        let ok =
            |ip: &str| check_key(&key(), Some(&u), &org(), &[], &req(ip, None, &[]), 1).is_ok();
        assert!(ok("203.0.113.200"));
        assert!(ok("::ffff:203.0.113.7"));
        assert!(ok("2001:db8:1::5"));
        assert!(!ok("203.0.114.1"));
        assert!(!ok("2001:db9::1"));
        let none = Requirements::default();
        assert_eq!(
            check_key(&key(), Some(&u), &org(), &[], &none, 1).unwrap_err(),
            Denial::IpNotAllowed
        );
    }

    #[test]
    fn plans_without_access_api_switch_and_billing_gate_keys() {
        let u = user(UserStatus::Active);
        let mut k = key();
        k.ip_allowlist.clear();
        let r = Requirements::default();
        let mut o = org();
        o.plan = "free".into();
        let free = vec!["free".to_string()];
        assert_eq!(
            check_key(&k, Some(&u), &o, &free, &r, 1).unwrap_err(),
            Denial::PlanInactive
        );
        let r_mgmt = Requirements {
            skip_plan: true,
            ..Default::default()
        };
        assert!(check_key(&k, Some(&u), &o, &free, &r_mgmt, 1).is_ok());
        let mut o = org();
        o.api_access = false;
        assert_eq!(
            check_key(&k, Some(&u), &o, &[], &r, 1).unwrap_err(),
            Denial::PlanInactive
        );
    }

    #[test]
    fn gcra_allows_a_burst_then_refills_at_the_steady_rate() {
        let mut tat = 0;
        let now = 1_000_000;
        for i in 0..10 {
            let (d, t) = gcra(tat, now, 10, 60, 1);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 9 - i);
            tat = t;
        }
        let (d, t) = gcra(tat, now, 10, 60, 1);
        assert!(!d.allowed);
        assert_eq!(t, tat, "a refused request does not move the TAT");
        assert_eq!(d.retry_after_ms, 6_000);
        assert_eq!(d.reset_at, now + 60_000);
        let (d, _) = gcra(tat, now + 6_000, 10, 60, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        let (d, _) = gcra(tat, now + 60_000, 10, 60, 1);
        assert_eq!(d.remaining, 9);
    }

    #[test]
    fn gcra_cost_counts_several_requests() {
        let (d, tat) = gcra(0, 0, 5, 5, 3);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
        let (d, _) = gcra(tat, 0, 5, 5, 3);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 2);
    }
}
