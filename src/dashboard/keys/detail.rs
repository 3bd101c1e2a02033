//! A key's page.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::create::{Fresh, fresh_dialog};
use super::dialogs::{delete_dialog, edit_dialog, reveal_dialog, revoke_dialog, rotate_dialog};
use super::fields::rate_limit_text;
use super::list::{environment_badge, shown_once_notice};
use super::{expiry_cell, eye, key_actions, masked, members, scope_chips, status_badges};
use crate::dashboard::audit::event_row;
use crate::dashboard::layout::{self, Nav, page_header, time_ago};
use crate::dashboard::{FieldErrors, FormData, Member, error_page, page};
use crate::domain::model::{Api, Key, RefillInterval, User};
use crate::http::AppState;
use crate::service::{ServiceError, apis, audit, keys, sessions};
use crate::store::AuditFilter;

#[derive(Debug, Default, Deserialize)]
pub(super) struct DetailQuery {
    dialog: Option<String>,
    /// Present on the page a rotation leads to: the new key's secret is shown this once.
    new: Option<String>,
}

/// What a key page needs besides the key.
pub(super) struct DetailData {
    pub(super) key: Key,
    pub(super) api: Option<Api>,
    pub(super) members: Vec<User>,
    pub(super) events: Option<Vec<crate::domain::model::AuditEvent>>,
    /// The key's usage over the last 24 hours, when the member may read usage.
    pub(super) usage: Option<crate::usage::report::Report>,
    pub(super) acls: Vec<crate::domain::model::IpAcl>,
    pub(super) groups: Vec<crate::domain::model::KeyGroup>,
}

pub(super) async fn load_detail(
    state: &AppState,
    m: &Member,
    id: &str,
) -> Result<DetailData, ServiceError> {
    let key = keys::get_with_deleted(&state.ctx, &m.caller, id).await?;
    let api = apis::get(&state.ctx, &m.caller, &key.api_id).await.ok();
    let members = members(state, m).await?;
    let events = if m.actions.read_audit {
        let filter = AuditFilter {
            target_id: Some(key.id.clone()),
            limit: 10,
            ..AuditFilter::default()
        };
        Some(
            audit::list(&state.ctx, &m.caller, &filter)
                .await?
                .into_iter()
                .map(|(_, e)| e)
                .collect(),
        )
    } else {
        None
    };
    let usage = if m.actions.read_usage {
        let range = crate::usage::report::RangeQuery::default();
        Some(crate::usage::report::key_usage(&state.ctx, &m.caller, &key.id, &range).await?)
    } else {
        None
    };
    let acls = crate::service::acls::list(&state.ctx, &m.caller).await?;
    let groups = crate::service::groups::list(&state.ctx, &m.caller).await?;
    Ok(DetailData {
        key,
        api,
        members,
        events,
        usage,
        acls,
        groups,
    })
}

/// Which dialog a key page opens, and with what refused input; or why an action was refused.
pub(super) enum Open<'a> {
    None,
    Named(&'a str),
    Edit(&'a FormData, FieldErrors),
    Rotate(FieldErrors),
    /// The state of the key refused the action (a 409): said at the top, with what to do.
    Refused(String),
    /// A secret that was already shown (a reload of the page a rotation led to).
    ShownOnce,
}

pub(super) async fn detail_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    let d = match load_detail(&state, &m, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&m), e),
    };
    if q.new.is_none() {
        let open = q.dialog.as_deref().map_or(Open::None, Open::Named);
        return page(&m, StatusCode::OK, render_detail(&m, &d, open, None));
    }
    // The page a rotation leads to: the new key's secret, held for this session, shown once.
    let secret = match sessions::take_secret(&state.ctx, &m.session, &d.key.id).await {
        Ok(s) => s,
        Err(e) => return error_page(Some(&m), e),
    };
    let Some(secret) = secret else {
        return page(
            &m,
            StatusCode::OK,
            render_detail(&m, &d, Open::ShownOnce, None),
        );
    };
    let old = match &d.key.replaces {
        Some(old) => keys::get_with_deleted(&state.ctx, &m.caller, old)
            .await
            .ok(),
        None => None,
    };
    let fresh = Fresh {
        key: &d.key,
        secret: &secret,
        rotated: old.as_ref(),
        return_to: format!("/keys/{}", d.key.id),
    };
    page(
        &m,
        StatusCode::OK,
        render_detail(&m, &d, Open::None, Some(&fresh)),
    )
}

pub(super) fn render_detail(
    m: &Member,
    d: &DetailData,
    open: Open<'_>,
    fresh: Option<&Fresh<'_>>,
) -> Markup {
    let k = &d.key;
    let now = m.now;
    let may = key_actions(m, k, d.api.as_ref(), &d.members);
    let named = |n: &str| matches!(open, Open::Named(x) if x == n);
    let actions = html! {
        @if may.edit { button type="button" class="btn" data-open="edit-key" { "Edit" } }
        @if may.rotate { button type="button" class="btn" data-open="rotate-key" { "Rotate" } }
        @if may.revoke { button type="button" class="btn danger-outline" data-open="revoke-key" { "Revoke" } }
        @if may.delete { button type="button" class="btn danger" data-open="delete-key" { "Delete" } }
    };
    let content = html! {
        nav class="breadcrumb" aria-label="Breadcrumb" {
            a href="/keys" { "API keys" } span aria-hidden="true" { " / " } span aria-current="page" { (k.name) }
        }
        @match &open {
            Open::Refused(why) => {
                div class="notice error" role="alert" {
                    strong { "Nothing was changed. " } (why)
                    @if let Some(next) = &k.replaced_by {
                        " " a href={ "/keys/" (next) } { "Open the replacement key" } "."
                    }
                }
            }
            Open::ShownOnce => (shown_once_notice(k)),
            _ => {}
        }
        (page_header(&k.name, Some(html! {
            span class="badges inline" { code class="prefix" { (masked(k)) } (status_badges(k, now)) }
        }), actions))
        div class="detail-grid" {
            section class="card" aria-labelledby="settings-title" {
                h2 id="settings-title" { "Settings" }
                dl class="props" {
                    dt { "Key" } dd {
                        code class="prefix" { (masked(k)) }
                        @if may.reveal {
                            " " button type="button" class="btn small ghost" data-open="reveal-key"
                                aria-label="Reveal the full key" title="Reveal the full key" { (eye()) " Reveal" }
                        }
                    }
                    dt { "ID" } dd { code { (k.id) } }
                    @if let Some(desc) = &k.description { dt { "Description" } dd { (desc) } }
                    dt { "API" } dd { (d.api.as_ref().map_or(k.api_id.as_str(), |a| a.name.as_str())) }
                    dt { "Type" } dd { (k.token_type) }
                    dt { "Environment" } dd { (environment_badge(k.environment)) }
                    dt { "Scopes" } dd { (scope_chips(&k.scopes)) }
                    dt { "Key groups" } dd id="key-groups" {
                        @if k.group_ids.is_empty() { span class="muted" { "None" } }
                        @else {
                            ul class="chips" {
                                @for g in &k.group_ids {
                                    li class="chip" { (d.groups.iter().find(|x| &x.id == g).map_or(g.as_str(), |x| x.name.as_str())) }
                                }
                            }
                        }
                    }
                    dt { "Effective scopes" } dd id="effective-scopes" { (scope_chips(&k.effective_scopes())) }
                    dt { "IP allowlist" } dd {
                        @if k.ip_allowlist.is_empty() && k.ip_acl_ids.is_empty() { span class="muted" { "Any IP" } }
                        @else if k.ip_allowlist.is_empty() { span class="muted" { "Only its IP ACLs" } }
                        @else { ul class="plain-list" { @for n in &k.ip_allowlist { li { code { (n) } } } } }
                    }
                    dt { "IP ACLs" } dd id="key-acls" {
                        @if k.ip_acl_ids.is_empty() { span class="muted" { "None" } }
                        @else {
                            ul class="plain-list" {
                                @for id in &k.ip_acl_ids {
                                    @match d.acls.iter().find(|a| &a.id == id) {
                                        Some(a) => li { strong { (a.name) } " " span class="muted" { (a.entries.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) } },
                                        None => li { code { (id) } " " span class="muted" { "(deleted)" } },
                                    }
                                }
                            }
                        }
                    }
                    dt { "Resources" } dd id="key-resources" {
                        @if k.resources.is_empty() { span class="muted" { "Every resource" } }
                        @else { ul class="chips" { @for r in &k.resources { li class="chip" { code { (r) } } } } }
                    }
                    dt { "Expires" } dd { (expiry_cell(k)) }
                    dt { "Rate limit" } dd {
                        @match (&k.rate_limit, &k.linked.group_rate_limit) {
                            (Some(rl), _) => (rate_limit_text(rl)),
                            (None, Some(rl)) => { (rate_limit_text(rl)) span class="muted" { " (from its key group)" } },
                            (None, None) => span class="muted" { "None" },
                        }
                    }
                    @if let Some(q) = &k.quota {
                        dt { "Quota" } dd {
                            (q.remaining) " uses left"
                            @if let Some(r) = &q.refill {
                                ", refilled " (match r.interval { RefillInterval::Daily => "daily", RefillInterval::Monthly => "monthly" }) " to " (r.amount)
                            }
                        }
                    }
                    @if !k.metadata.is_empty() {
                        dt { "Metadata" } dd {
                            pre class="metadata" { code { (serde_json::to_string_pretty(&k.metadata).unwrap_or_default()) } }
                        }
                    }
                    dt { "Owner" } dd { (member_label(&d.members, &k.owner_id)) }
                    dt { "Created" } dd { (layout::date_time(k.created_at)) " by " (member_label(&d.members, &k.created_by)) }
                    @if let Some(r) = &k.replaces { dt { "Replaces" } dd { a href={ "/keys/" (r) } { code { (r) } } } }
                    @if let Some(r) = &k.replaced_by { dt { "Replaced by" } dd { a href={ "/keys/" (r) } { code { (r) } } } }
                    @if let Some(t) = k.revoked_at {
                        dt { @if t > now { "Stops working" } @else { "Revoked" } }
                        dd { (layout::date_time(t)) @if let Some(r) = &k.revoke_reason { " · " (r) } }
                    }
                    @if let Some(t) = k.exposed_at {
                        dt { "Exposed" } dd { span class="badge danger" { "Seen in a URL" } " " (layout::date_time(t)) " — rotate this key." }
                    }
                    dt { "Recoverable" } dd { @if k.recoverable { "Yes" } @else { "No: shown once at creation" } }
                }
            }
            div class="stack" {
                section class="card" aria-labelledby="last-used-title" {
                    h2 id="last-used-title" { "Last used" }
                    @match k.last_used_at {
                        Some(t) => {
                            p class="big" { (time_ago(now, t)) }
                            p class="muted" { (layout::date_time(t)) @if let Some(ip) = &k.last_used_ip { " from " code { (ip) } } }
                        }
                        None => p class="muted" { "Never used yet." },
                    }
                }
            }
        }
        @if let Some(usage) = &d.usage {
            section class="card key-usage" id="usage" aria-labelledby="usage-title" {
                div class="card-header" {
                    h2 id="usage-title" { "Usage, last 24 hours" }
                    a href="/usage" { "All keys" }
                }
                (crate::dashboard::usage::key_section(usage))
            }
        }
        @if let Some(events) = &d.events {
            section class="card" aria-labelledby="activity-title" {
                div class="card-header" {
                    h2 id="activity-title" { "Recent activity" }
                    a href={ "/audit?target=" (k.id) } { "Full history" }
                }
                @if events.is_empty() {
                    p class="muted" { "No events for this key yet." }
                } @else {
                    div class="table-wrap" {
                        table class="table audit-table" {
                            caption class="visually-hidden" { "Recent audit events of this key" }
                            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Target" } th scope="col" { "From" } } }
                            tbody { @for e in events { (event_row(e, now)) } }
                        }
                    }
                }
            }
        }
        @if may.edit {
            (edit_dialog(m, d, match &open { Open::Edit(f, e) => Some((*f, e)), _ => None }, named("edit")))
        }
        @if may.rotate {
            (rotate_dialog(m, k, match &open { Open::Rotate(e) => Some(e), _ => None }, named("rotate")))
        }
        @if may.revoke { (revoke_dialog(m, k, named("revoke"))) }
        @if may.reveal { (reveal_dialog(k, named("reveal"))) }
        @if may.delete { (delete_dialog(m, Some(k), named("delete"))) }
        @if let Some(f) = fresh { (fresh_dialog(f, now)) }
    };
    layout::shell(m, Nav::Keys, &k.name, content)
}

fn member_label(members: &[User], id: &str) -> String {
    members
        .iter()
        .find(|u| u.id == id)
        .map(|u| {
            if u.is_service() {
                format!("{} (service account)", u.name)
            } else if u.name.is_empty() {
                u.email.clone()
            } else {
                format!("{} ({})", u.name, u.email)
            }
        })
        .unwrap_or_else(|| id.to_owned())
}
