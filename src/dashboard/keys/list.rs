//! The list of keys: its filters, rows and pages.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::create::{CreateState, Fresh, create_dialog, fresh_dialog};
use super::dialogs::delete_dialog;
use super::{expiry_cell, eye, key_actions, masked, members, scope_chips, status_badge};
use crate::dashboard::layout::{self, Nav, page_header, time_ago, time_date};
use crate::dashboard::{Member, error_page, page};
use crate::domain::model::{Api, Environment, Key, Millis, User};
use crate::http::AppState;
use crate::http::views::{decode_cursor, encode_cursor};
use crate::service::{ServiceError, apis, keys};
use crate::store::{KeyFilter, StatusFilter};

/// Keys per page of the list.
const PAGE_SIZE: u32 = 50;

#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    status: Option<String>,
    owner: Option<String>,
    api: Option<String>,
    cursor: Option<String>,
}

impl ListQuery {
    fn filtered(&self) -> bool {
        [&self.status, &self.owner, &self.api]
            .iter()
            .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
    }
}

/// Everything the list page shows.
pub(super) struct ListData {
    pub(super) keys: Vec<Key>,
    pub(super) next_cursor: Option<String>,
    pub(super) apis: Vec<Api>,
    pub(super) members: Vec<User>,
}

pub(super) async fn load_list(
    state: &AppState,
    m: &Member,
    q: &ListQuery,
) -> Result<ListData, ServiceError> {
    let status = match q.status.as_deref().unwrap_or_default() {
        "active" => Some(StatusFilter::Active),
        "revoked" => Some(StatusFilter::Revoked),
        "expired" => Some(StatusFilter::Expired),
        "all" => Some(StatusFilter::All),
        _ => None,
    };
    let filter = KeyFilter {
        api_id: q.api.clone().filter(|s| !s.is_empty()),
        owner_id: q.owner.clone().filter(|s| !s.is_empty()),
        status,
        limit: PAGE_SIZE + 1,
        cursor: q.cursor.as_deref().and_then(decode_cursor),
        ..KeyFilter::default()
    };
    let mut keys = keys::list(&state.ctx, &m.caller, &filter).await?;
    let next_cursor = if keys.len() > PAGE_SIZE as usize {
        keys.truncate(PAGE_SIZE as usize);
        keys.last().map(|k| encode_cursor(k.created_at, &k.id))
    } else {
        None
    };
    let apis = apis::list(&state.ctx, &m.caller).await?;
    let members = members(state, m).await?;
    Ok(ListData {
        keys,
        next_cursor,
        apis,
        members,
    })
}

pub(super) async fn list_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<ListQuery>,
) -> Response {
    match load_list(&state, &m, &q).await {
        Ok(data) => page(&m, StatusCode::OK, render_list(&m, &q, &data, None, None)),
        Err(e) => error_page(Some(&m), e),
    }
}

pub(super) fn render_list(
    m: &Member,
    q: &ListQuery,
    data: &ListData,
    create: Option<&CreateState<'_>>,
    fresh: Option<&Fresh<'_>>,
) -> Markup {
    let now = m.now;
    let can_create = m.actions.create_keys;
    let actions = html! {
        @if can_create {
            button type="button" class="btn primary" data-open="create-key" { "+ Create key" }
        }
    };
    let content = html! {
        (page_header("API keys", Some(html! {
            "Keys let your services and integrations call your APIs. Each one is shown in full only once."
        }), actions))
        (filters(q, data))
        @if data.keys.is_empty() {
            (empty_state(m, q))
        } @else {
            @if !q.filtered() && q.cursor.is_none() && !data.keys.iter().any(|k| !is_management(data, k)) {
                (empty_state(m, q))
                h2 class="section-title" { "Management keys" }
                p class="muted" { "Keys of Keyward's own management API, for scripts and the CLI." }
            }
            div class="table-wrap" {
                table class="table keys-table" {
                    caption class="visually-hidden" { "API keys" }
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Key" }
                            th scope="col" { "Type" }
                            th scope="col" { "Scopes" }
                            th scope="col" { "IP allowlist" }
                            th scope="col" { "Expires" }
                            th scope="col" { "Created" }
                            th scope="col" { "Last used" }
                            th scope="col" { "Status" }
                            th scope="col" { span class="visually-hidden" { "Actions" } }
                        }
                    }
                    tbody {
                        @for k in &data.keys { (key_row(m, k, data, now)) }
                    }
                }
            }
            @if let Some(c) = &data.next_cursor {
                nav class="pager" aria-label="Pages" {
                    @if q.cursor.is_some() { a class="btn" href=(list_url(q, None)) { "First page" } }
                    a class="btn" href=(list_url(q, Some(c))) { "Next page" }
                }
            } @else if q.cursor.is_some() {
                nav class="pager" aria-label="Pages" { a class="btn" href=(list_url(q, None)) { "First page" } }
            }
        }
        @if can_create {
            (create_dialog(m, &data.apis, &data.members, &m.org, create))
        }
        (delete_dialog(m, None, false))
        @if let Some(f) = fresh { (fresh_dialog(f, now)) }
    };
    layout::shell(m, Nav::Keys, "API keys", content)
}

fn is_management(data: &ListData, k: &Key) -> bool {
    data.apis
        .iter()
        .any(|a| a.id == k.api_id && a.is_management())
}

fn list_url(q: &ListQuery, cursor: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for (k, v) in [("status", &q.status), ("owner", &q.owner), ("api", &q.api)] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            pairs.push((k, v));
        }
    }
    if let Some(c) = cursor {
        pairs.push(("cursor", c));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(qs) if !qs.is_empty() => format!("/keys?{qs}"),
        _ => "/keys".to_owned(),
    }
}

fn filters(q: &ListQuery, data: &ListData) -> Markup {
    let status = q.status.as_deref().unwrap_or_default();
    let owner = q.owner.as_deref().unwrap_or_default();
    let api = q.api.as_deref().unwrap_or_default();
    html! {
        form class="filters" method="get" action="/keys" role="search" aria-label="Filter keys" {
            div class="filter" {
                label for="filter-status" { "Status" }
                select id="filter-status" name="status" data-autosubmit {
                    @for (v, label) in [("", "All but deleted"), ("active", "Active"), ("expired", "Expired"),
                                        ("revoked", "Revoked"), ("all", "All, with deleted")] {
                        option value=(v) selected[status == v] { (label) }
                    }
                }
            }
            div class="filter" {
                label for="filter-owner" { "Owner" }
                select id="filter-owner" name="owner" data-autosubmit {
                    option value="" selected[owner.is_empty()] { "Anyone" }
                    @for u in &data.members {
                        option value=(u.id) selected[owner == u.id] {
                            @if u.name.is_empty() { (u.email) } @else { (u.name) " · " (u.email) }
                        }
                    }
                }
            }
            @if data.apis.len() > 1 {
                div class="filter" {
                    label for="filter-api" { "API" }
                    select id="filter-api" name="api" data-autosubmit {
                        option value="" selected[api.is_empty()] { "Every API" }
                        @for a in &data.apis {
                            option value=(a.id) selected[api == a.id] { (a.name) }
                        }
                    }
                }
            }
            div class="filter filter-actions" {
                button type="submit" class="btn" { "Apply" }
                @if q.filtered() { a class="btn ghost" href="/keys" { "Clear" } }
            }
        }
    }
}

fn empty_state(m: &Member, q: &ListQuery) -> Markup {
    html! {
        div class="card empty" {
            @if q.filtered() {
                h2 { "No keys match these filters" }
                p { "Try another status or owner, or " a href="/keys" { "clear the filters" } "." }
            } @else {
                div class="empty-icon" aria-hidden="true" { (layout::logo()) }
                h2 { "No API keys yet" }
                p {
                    "An API key lets a program — your backend, a script, a partner's integration — call your "
                    "API on your organization's behalf, without a password. Give each integration its own "
                    "key, with only the scopes it needs, an IP allowlist and an expiry; rotate or revoke "
                    "it at any time without touching the others."
                }
                @if m.actions.create_keys {
                    button type="button" class="btn primary" data-open="create-key" { "+ Create your first key" }
                } @else {
                    p class="muted" { "Your role can view keys but not create them." }
                }
            }
        }
    }
}

fn key_row(m: &Member, k: &Key, data: &ListData, now: Millis) -> Markup {
    let protected_apis = data.apis.iter().filter(|a| !a.is_management()).count();
    let api = data.apis.iter().find(|a| a.id == k.api_id);
    let may = key_actions(m, k, api, &data.members);
    let management = api.is_some_and(Api::is_management);
    let api_name = api
        .filter(|a| protected_apis > 1 && !a.is_management())
        .map(|a| a.name.as_str());
    html! {
        tr data-key-id=(k.id) {
            td data-label="Name" {
                a class="key-name" href={ "/keys/" (k.id) } { (k.name) }
                div class="muted small" { (member_short(&data.members, &k.owner_id)) }
            }
            td data-label="Key" {
                code class="prefix" { (masked(k)) }
                @if may.reveal {
                    " " a class="icon-link" href={ "/keys/" (k.id) "?dialog=reveal" }
                        aria-label={ "Reveal the full key of " (k.name) } title="Reveal the full key" { (eye()) }
                }
            }
            td data-label="Type" {
                (k.token_type)
                @if k.environment == Environment::Test { " " span class="badge neutral" { "test" } }
                @if management { div { span class="badge neutral" title="A key of Keyward's own management API" { "management" } } }
                @if let Some(a) = api_name { div class="muted small" { (a) } }
            }
            td data-label="Scopes" { (scope_summary(&k.scopes)) }
            td data-label="IP allowlist" { (allowlist_cell(k)) }
            td data-label="Expires" { (expiry_cell(k, now)) }
            td data-label="Created" { (time_date(k.created_at)) }
            td data-label="Last used" {
                @match k.last_used_at {
                    Some(t) => (time_ago(now, t)),
                    None => span class="muted" { "Never" },
                }
            }
            td data-label="Status" { (status_badge(k, now)) }
            td class="row-actions" {
                details class="menu" {
                    summary class="btn small ghost icon-menu" aria-label={ "Actions for " (k.name) } title="Actions" { "⋯" }
                    div class="menu-items" {
                        a href={ "/keys/" (k.id) } { "View details" }
                        @if may.edit {
                            a href={ "/keys/" (k.id) "?dialog=edit" } { "Edit" }
                        }
                        @if may.rotate {
                            a href={ "/keys/" (k.id) "?dialog=rotate" } { "Rotate" }
                        }
                        @if may.revoke {
                            a href={ "/keys/" (k.id) "?dialog=revoke" } { "Revoke" }
                        }
                        @if may.delete {
                            button type="button" class="danger-text" data-open="delete-key"
                                data-fill-name=(k.name) data-fill-prefix=(masked(k))
                                data-fill-action={ "/keys/" (k.id) "/delete" } { "Delete" }
                        }
                    }
                }
            }
        }
    }
}

/// The first scopes of a key, and how many more it has, for the list.
fn scope_summary(scopes: &[String]) -> Markup {
    const SHOWN: usize = 3;
    html! {
        @if scopes.len() <= SHOWN + 1 {
            (scope_chips(scopes))
        } @else {
            ul class="chips" title=(scopes.join(", ")) {
                @for s in &scopes[..SHOWN] { li class="chip" { code { (s) } } }
                li class="muted small" { "+" (scopes.len() - SHOWN) " more" }
            }
        }
    }
}

/// A member's name (or email), with the email in the title.
fn member_short(members: &[User], id: &str) -> Markup {
    match members.iter().find(|u| u.id == id) {
        Some(u) if !u.name.is_empty() => html! { span title=(u.email) { (u.name) } },
        Some(u) => html! { span { (u.email) } },
        None => html! { span { (id) } },
    }
}

fn allowlist_cell(k: &Key) -> Markup {
    html! {
        @if k.ip_allowlist.is_empty() {
            span class="muted" { "Any IP" }
        } @else {
            ul class="plain-list" {
                @for net in k.ip_allowlist.iter().take(2) { li { code { (net) } } }
                @if k.ip_allowlist.len() > 2 { li class="muted" { "+" (k.ip_allowlist.len() - 2) " more" } }
            }
        }
    }
}
