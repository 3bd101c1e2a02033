//! Form controls and their parsing shared by the create and edit dialogs.

use maud::{Markup, html};

use crate::dashboard::layout::{described_by, field};
use crate::dashboard::{FieldErrors, FormData, Member};
use crate::domain::model::{Api, IpAcl, KeyGroup, RateLimit};
use crate::service::authz;

/// Rate limit periods offered, in seconds.
pub(super) const PERIODS: &[(u32, &str)] = &[
    (1, "per second"),
    (60, "per minute"),
    (3600, "per hour"),
    (86_400, "per day"),
];

pub(super) fn rate_limit_text(rl: &RateLimit) -> String {
    match PERIODS.iter().find(|(s, _)| *s == rl.per_seconds) {
        Some((_, per)) => format!("{} requests {per}", rl.requests),
        None => format!("{} requests per {} s", rl.requests, rl.per_seconds),
    }
}

pub(super) fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the optional rate limit of a form; a half-filled one is an error of `rate_limit`.
pub(in crate::dashboard) fn parse_rate_limit(
    form: &FormData,
    errors: &mut FieldErrors,
) -> Option<RateLimit> {
    let requests = form.text("rate_requests");
    if requests.is_empty() {
        return None;
    }
    let per_seconds = form.text("rate_per").parse::<u32>().unwrap_or(60);
    match requests.parse::<i64>() {
        Ok(requests) => match u32::try_from(requests) {
            Ok(requests) => Some(RateLimit {
                requests,
                per_seconds,
            }),
            // Out of range for the service to say so: the range is the one it checks.
            Err(_) => {
                let mut e = crate::domain::validate::Errors::default();
                crate::domain::validate::rate_limit(
                    &mut e,
                    "rate_limit",
                    &RateLimit {
                        requests: 0,
                        per_seconds,
                    },
                );
                for f in e.0 {
                    errors.add(f.field, f.message);
                }
                None
            }
        },
        Err(_) => {
            errors.add(
                "rate_limit",
                "the number of requests must be a whole number",
            );
            None
        }
    }
}

pub(in crate::dashboard) fn rate_limit_fields(
    id: &str,
    requests: &str,
    per: &str,
    errors: &FieldErrors,
) -> Markup {
    let error = errors.of("rate_limit");
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "Rate limit " span class="optional" { "optional" } }
            div class="inline-fields" {
                label class="visually-hidden" for={ (id) "-requests" } { "Requests" }
                input id={ (id) "-requests" } name="rate_requests" type="number" min="1" max="1000000"
                    inputmode="numeric" placeholder="e.g. 100" value=(requests)
                    aria-describedby={ (id) "-hint " (id) "-error" }
                    aria-invalid=[error.is_some().then_some("true")];
                label class="visually-hidden" for={ (id) "-per" } { "Period" }
                select id={ (id) "-per" } name="rate_per" {
                    @for (s, label) in PERIODS {
                        option value=(s) selected[per == s.to_string() || (per.is_empty() && *s == 60)] { (label) }
                    }
                }
            }
            p class="hint" id={ (id) "-hint" } { "Leave empty for no limit. Requests over the limit answer 429." }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

/// Reads the optional metadata of a form: a JSON object.
pub(super) fn parse_metadata(
    form: &FormData,
    errors: &mut FieldErrors,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    let text = form.text("metadata").trim();
    if text.is_empty() {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Some(map),
        Ok(_) => {
            errors.add(
                "metadata",
                "must be a JSON object, such as {\"customer\": \"acme\"}",
            );
            None
        }
        Err(e) => {
            errors.add("metadata", format!("is not valid JSON ({e})"));
            None
        }
    }
}

pub(super) fn metadata_field(id: &str, value: &str, errors: &FieldErrors) -> Markup {
    field(
        id,
        "Metadata (optional)",
        Some(
            "A JSON object kept with the key and returned with it by every verification, at most 4 KiB.",
        ),
        errors,
        "metadata",
        html! {
            textarea id=(id) name="metadata" rows="3" spellcheck="false"
                placeholder="{\"customer\": \"acme\"}"
                aria-describedby=(described_by(id, true))
                aria-invalid=[errors.of("metadata").is_some().then_some("true")] { (value) }
        },
    )
}

pub(super) fn allowlist_field(id: &str, value: &str, errors: &FieldErrors) -> Markup {
    let invalid = errors.of("ip_allowlist").is_some();
    field(
        id,
        "IP allowlist",
        Some("One IPv4/IPv6 address or CIDR block per line. Leave empty to allow any address."),
        errors,
        "ip_allowlist",
        html! {
            textarea id=(id) name="ip_allowlist" rows="3" data-validate="ip-list"
                placeholder="203.0.113.0/24\n2001:db8::/32" spellcheck="false" autocapitalize="off"
                aria-describedby=(described_by(id, true))
                aria-invalid=[invalid.then_some("true")] { (value) }
        },
    )
}

/// The named IP ACLs a key may take, as a multi-select of checkboxes (`ip_acl_ids`), beside the
/// free-form allowlist.
pub(super) fn acl_checkboxes(
    id: &str,
    acls: &[IpAcl],
    checked: &[String],
    errors: &FieldErrors,
) -> Markup {
    let error = errors.of("ip_acl_ids");
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "IP ACLs " span class="optional" { "optional" } }
            @if acls.is_empty() {
                p class="hint" { "No named IP ACLs yet. An admin can create one on the " a href="/ip-acls" { "IP ACLs" } " page, to share one list of networks between many keys." }
            } @else {
                p class="hint" id={ (id) "-hint" } { "Shared lists of networks; the key accepts their addresses and those of its own allowlist." }
                div class="checkbox-list" data-acl-select {
                    @for (i, a) in acls.iter().enumerate() {
                        @let cid = format!("{id}-{i}");
                        label class="checkbox" for=(cid) {
                            input type="checkbox" id=(cid) name="ip_acl_ids" value=(a.id) checked[checked.contains(&a.id)];
                            span {
                                (a.name)
                                span class="muted" { " — " (a.entries.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            }
                        }
                    }
                }
            }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

/// The groups of one API a key may join, as checkboxes named `name`.
pub(super) fn group_checkboxes(
    id: &str,
    name: &str,
    groups: &[&KeyGroup],
    checked: &[String],
    errors: &FieldErrors,
) -> Markup {
    let error = errors.of("group_ids");
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "Key groups " span class="optional" { "optional" } }
            @if groups.is_empty() {
                p class="hint" { "This API has no key groups. An admin can create some on the " a href="/key-groups" { "Key groups" } " page." }
            } @else {
                p class="hint" { "The key also takes each group's scopes, and the first one's rate limit when it has none of its own." }
                div class="checkbox-list" data-group-select {
                    @for (i, g) in groups.iter().enumerate() {
                        @let cid = format!("{id}-{i}");
                        label class="checkbox" for=(cid) {
                            input type="checkbox" id=(cid) name=(name) value=(g.id) checked[checked.contains(&g.id)];
                            span {
                                (g.name)
                                @if !g.scopes.is_empty() { span class="muted" { " — " (g.scopes.join(", ")) } }
                            }
                        }
                    }
                }
            }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

pub(super) fn resources_field(id: &str, value: &str, errors: &FieldErrors) -> Markup {
    let invalid = errors.of("resources").is_some();
    field(
        id,
        "Resources (optional)",
        Some(
            "What the key may reach, one type:id per line; a trailing * matches any suffix, e.g. project:acme-*. Leave empty for everything.",
        ),
        errors,
        "resources",
        html! {
            textarea id=(id) name="resources" rows="2" spellcheck="false" autocapitalize="off"
                placeholder="project:acme-*\nteam:core"
                aria-describedby=(described_by(id, true))
                aria-invalid=[invalid.then_some("true")] { (value) }
        },
    )
}

pub(super) fn scope_checkboxes(
    m: &Member,
    id: &str,
    name: &str,
    api: &Api,
    checked: &[String],
    errors: &FieldErrors,
) -> Markup {
    let error = errors.of("scopes");
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "Scopes" }
            @if api.scopes.is_empty() {
                p class="hint" {
                    "This API has no scopes yet, so its keys carry none. "
                    @if authz::may_edit_api(&m.caller, api) {
                        a href={ "/apis#api-" (api.id) } { "Add scopes to " (api.name) } " (name and description for each), then come back."
                    } @else {
                        "An admin can add some on the " a href="/apis" { "APIs" } " page."
                    }
                }
            } @else {
                p class="hint" id={ (id) "-hint" } { "What the key may do. Grant only what the integration needs." }
                div class="checkbox-list" {
                    @for (i, s) in api.scopes.iter().enumerate() {
                        @let cid = format!("{id}-{i}");
                        @let grantable = authz::may_grant_scope(&m.caller, api, &s.name);
                        label class="checkbox" for=(cid) {
                            input type="checkbox" id=(cid) name=(name) value=(s.name)
                                checked[checked.contains(&s.name)] disabled[!grantable];
                            span {
                                code { (s.name) }
                                @if !s.description.is_empty() { span class="muted" { " — " (s.description) } }
                                @if !grantable { span class="muted" { " (your role does not hold it)" } }
                            }
                        }
                    }
                }
            }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlists_split_on_lines_commas_and_spaces() {
        assert_eq!(
            split_list("203.0.113.0/24\r\n 10.0.0.1, 2001:db8::/32\n\n"),
            ["203.0.113.0/24", "10.0.0.1", "2001:db8::/32"]
        );
    }

    #[test]
    fn a_half_filled_rate_limit_is_an_error_and_an_empty_one_is_none() {
        let mut e = FieldErrors::default();
        let f = FormData::parse(b"rate_requests=&rate_per=60");
        assert_eq!(parse_rate_limit(&f, &mut e), None);
        let f = FormData::parse(b"rate_requests=100&rate_per=3600");
        assert_eq!(
            parse_rate_limit(&f, &mut e),
            Some(RateLimit {
                requests: 100,
                per_seconds: 3600
            })
        );
        let f = FormData::parse(b"rate_requests=lots&rate_per=60");
        assert_eq!(parse_rate_limit(&f, &mut e), None);
        assert!(e.of("rate_limit").is_some());
        let mut e = FieldErrors::default();
        let f = FormData::parse(b"rate_requests=-5&rate_per=60");
        assert_eq!(parse_rate_limit(&f, &mut e), None);
        assert_eq!(
            e.of("rate_limit").as_deref(),
            Some("Must be between 1 and 1000000"),
            "a negative number is out of range, not 'not a whole number'"
        );
    }
}
