//! The audit log: who did what to which key, member or API, when and from where; with filters
//! and paging.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, page_header, time_ago};
use super::{Member, error_page, page};
use crate::domain::model::{AuditEvent, Millis};
use crate::http::AppState;
use crate::service::audit;
use crate::store::AuditFilter;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/audit", get(audit_page))
}

const PAGE_SIZE: u32 = 50;

/// Actions offered in the filter, with how the log names them.
const ACTIONS: &[(&str, &str)] = &[
    ("key.created", "Key created"),
    ("key.updated", "Key edited"),
    ("key.rotated", "Key rotated"),
    ("key.revoked", "Key revoked"),
    ("key.deleted", "Key deleted"),
    ("key.exposed", "Key exposed in a URL"),
    ("key.revealed", "Key revealed"),
    ("user.signed_in", "Signed in"),
    ("user.sign_in_failed", "Failed sign-in"),
    ("user.signed_out", "Signed out"),
    ("user.password_set", "Password set"),
    ("user.password_changed", "Password changed"),
    ("user.created", "Member added"),
    ("user.updated", "Member renamed"),
    ("user.role_changed", "Role changed"),
    ("user.disabled", "Member disabled"),
    ("user.enabled", "Member enabled"),
    ("user.invited", "Invitation link made"),
    ("user.deleted", "Member removed"),
    ("api.created", "API created"),
    ("api.updated", "API changed"),
    ("org.updated", "Organization changed"),
];

/// How the log names an action: `key.rotated` reads "Key rotated".
pub fn action_label(action: &str) -> String {
    ACTIONS
        .iter()
        .find(|(a, _)| *a == action)
        .map(|(_, l)| (*l).to_owned())
        .unwrap_or_else(|| action.replace(['.', '_'], " "))
}

/// A short, human summary of an event's details.
fn details_summary(e: &AuditEvent) -> Option<String> {
    let d = e.details.as_object()?;
    let mut parts = Vec::new();
    if let Some(fields) = d.get("fields").and_then(|v| v.as_array()) {
        let names: Vec<&str> = fields.iter().filter_map(|f| f.as_str()).collect();
        if !names.is_empty() {
            parts.push(format!("changed {}", names.join(", ")));
        }
    }
    if let Some(r) = d.get("reason").and_then(|v| v.as_str()) {
        parts.push(format!("reason: {r}"));
    }
    if let Some(n) = d
        .get("revoked_together")
        .and_then(|v| v.as_i64())
        .filter(|n| *n > 1)
    {
        parts.push(format!("one of {n} revoked together"));
    }
    if let Some(n) = d.get("other_sessions_ended").and_then(|v| v.as_i64()) {
        parts.push(format!("{n} other session(s) ended"));
    }
    if let Some(p) = d.get("new_prefix").and_then(|v| v.as_str()) {
        parts.push(format!("new key {p}••••"));
    }
    if let Some(g) = d.get("grace_period_s").and_then(|v| v.as_i64()) {
        parts.push(if g == 0 {
            "no grace period".to_owned()
        } else {
            format!("grace {} h", (g + 1800) / 3600)
        });
    }
    if let Some(n) = d.get("name").and_then(|v| v.as_str()) {
        parts.push(format!("name: {n}"));
    }
    if let Some(s) = d.get("scopes").and_then(|v| v.as_array()) {
        if !s.is_empty() {
            let names: Vec<&str> = s.iter().filter_map(|x| x.as_str()).collect();
            parts.push(format!("scopes: {}", names.join(", ")));
        }
    }
    if let (Some(from), Some(to)) = (
        d.get("from").and_then(|v| v.as_str()),
        d.get("to").and_then(|v| v.as_str()),
    ) {
        parts.push(format!("{from} → {to}"));
    }
    if let Some(r) = d.get("role").and_then(|v| v.as_str()) {
        parts.push(format!("role: {r}"));
    }
    if let Some(v) = d.get("via").and_then(|v| v.as_str()) {
        parts.push(format!("via {v}"));
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// One row of an audit table.
pub fn event_row(e: &AuditEvent, now: Millis) -> Markup {
    let target_label = e.target_label.as_deref().or(e.target_id.as_deref());
    html! {
        tr {
            td data-label="When" { (time_ago(now, e.created_at)) }
            td data-label="Who" {
                span class="actor" { (e.actor.label) }
                @if e.actor.kind != "user" { " " span class="badge neutral" { (e.actor.kind) } }
            }
            td data-label="What" {
                span class={ "action" @if e.action.ends_with("failed") || e.action == "key.exposed" { " danger-text" } } { (action_label(&e.action)) }
                " " code class="muted small" { (e.action) }
                @if let Some(s) = details_summary(e) { div class="muted small" { (s) } }
            }
            td data-label="Target" {
                @match (e.target_type.as_str(), e.target_id.as_deref()) {
                    ("key", Some(id)) => a href={ "/keys/" (id) } {
                        code { (target_label.unwrap_or(id)) @if target_label.is_some_and(|l| !l.ends_with('•') && l != id) { "••••" } }
                    },
                    _ => @if let Some(l) = target_label { (l) },
                }
            }
            td data-label="From" {
                @match &e.ip { Some(ip) => code { (ip) }, None => span class="muted" { "—" } }
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn day_start(s: &str) -> Option<Millis> {
    let d = time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

fn page_url(q: &AuditQuery, cursor: Option<&str>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("action", &q.action),
        ("actor", &q.actor),
        ("target", &q.target),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        if let Some(v) = non_empty(v) {
            pairs.push((k, v));
        }
    }
    if let Some(c) = cursor {
        pairs.push(("cursor", c.to_owned()));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(qs) if !qs.is_empty() => format!("/audit?{qs}"),
        _ => "/audit".to_owned(),
    }
}

async fn audit_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = AuditFilter {
        actor: non_empty(&q.actor),
        action: non_empty(&q.action),
        target_id: non_empty(&q.target),
        from: q.from.as_deref().and_then(day_start),
        // The "to" day is included: events before the next midnight.
        to: q.to.as_deref().and_then(day_start).map(|t| t + 86_400_000),
        limit: PAGE_SIZE + 1,
        cursor: q.cursor.as_deref().and_then(|c| c.parse().ok()),
    };
    let mut events = match audit::list(&state.ctx, &m.caller, &filter).await {
        Ok(e) => e,
        Err(e) => return error_page(Some(&m), e),
    };
    let next = if events.len() > PAGE_SIZE as usize {
        events.truncate(PAGE_SIZE as usize);
        events.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    let filtered = [&q.action, &q.actor, &q.target, &q.from, &q.to]
        .iter()
        .any(|v| non_empty(v).is_some());
    let action = non_empty(&q.action).unwrap_or_default();
    let content = html! {
        (page_header("Audit log", Some(html! {
            "Every change to keys, members and settings, and every sign-in. Entries cannot be edited or deleted."
        }), html! {}))
        form class="filters" method="get" action="/audit" role="search" aria-label="Filter events" {
            div class="filter" {
                label for="audit-action" { "Action" }
                select id="audit-action" name="action" data-autosubmit {
                    option value="" selected[action.is_empty()] { "Any action" }
                    @for (a, label) in ACTIONS {
                        option value=(a) selected[action == *a] { (label) }
                    }
                }
            }
            div class="filter" {
                label for="audit-actor" { "Actor" }
                input id="audit-actor" name="actor" type="search" placeholder="Email, key prefix or id"
                    value=(q.actor.as_deref().unwrap_or_default());
            }
            div class="filter" {
                label for="audit-target" { "Target id" }
                input id="audit-target" name="target" type="search" placeholder="key_…, usr_…"
                    value=(q.target.as_deref().unwrap_or_default());
            }
            div class="filter" {
                label for="audit-from" { "From" }
                input id="audit-from" name="from" type="date" value=(q.from.as_deref().unwrap_or_default());
            }
            div class="filter" {
                label for="audit-to" { "To" }
                input id="audit-to" name="to" type="date" value=(q.to.as_deref().unwrap_or_default());
            }
            div class="filter filter-actions" {
                button type="submit" class="btn" { "Apply" }
                @if filtered { a class="btn ghost" href="/audit" { "Clear" } }
            }
        }
        @if events.is_empty() {
            div class="card empty" {
                h2 { "No events" }
                p { @if filtered { "Nothing matches these filters." } @else { "Nothing has happened yet." } }
            }
        } @else {
            div class="table-wrap" {
                table class="table audit-table" {
                    caption class="visually-hidden" { "Audit events, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                        th scope="col" { "Target" } th scope="col" { "From" }
                    } }
                    tbody { @for (_, e) in &events { (event_row(e, m.now)) } }
                }
            }
            nav class="pager" aria-label="Pages" {
                @if q.cursor.is_some() { a class="btn" href=(page_url(&q, None)) { "Newest" } }
                @if let Some(c) = &next { a class="btn" href=(page_url(&q, Some(c))) { "Older events" } }
            }
        }
    };
    page(
        &m,
        StatusCode::OK,
        layout::shell(&m, Nav::Audit, "Audit log", content),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_read_as_words() {
        assert_eq!(action_label("key.rotated"), "Key rotated");
        assert_eq!(action_label("webhook.sent"), "webhook sent");
    }
}
