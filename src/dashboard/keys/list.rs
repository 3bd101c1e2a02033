//! The list of keys: search, filters, sortable columns, pages with a total, and the selection
//! that revokes several keys at once.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::create::{CreateState, Fresh, create_dialog, fresh_dialog};
use super::dialogs::delete_dialog;
use super::{eye, key_actions, masked, members, scope_chips, status_badges};
use crate::dashboard::layout::{self, Nav, csrf_field, dialog, page_header, time_ago, time_date};
use crate::dashboard::{Member, error_page, page};
use crate::domain::model::{Api, Environment, IpAcl, Key, KeyGroup, Millis, User};
use crate::http::AppState;
use crate::service::{ServiceError, apis, keys, sessions};
use crate::store::{KeyFilter, KeyOrder, KeySort, StatusFilter};

/// Keys per page offered; the first is the default.
const PAGE_SIZES: [u32; 3] = [50, 25, 100];

/// The list's query as sent: every value a string, read leniently, so that a hand-edited address
/// shows the list with defaults rather than an error.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    status: Option<String>,
    env: Option<String>,
    owner: Option<String>,
    api: Option<String>,
    sort: Option<String>,
    dir: Option<String>,
    page: Option<String>,
    per_page: Option<String>,
    /// The key just created, whose secret the page shows once.
    pub(super) new: Option<String>,
}

/// What the list shows, read from its query: the search, filters, order and page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListParams {
    search: String,
    status: &'static str,
    env: &'static str,
    owner: String,
    api: String,
    sort: KeySort,
    descending: bool,
    page: u64,
    per_page: u32,
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams::from_query(&ListQuery::default())
    }
}

const STATUSES: [(&str, &str); 6] = [
    ("", "All but deleted"),
    ("active", "Active"),
    ("disabled", "Disabled"),
    ("expired", "Expired"),
    ("revoked", "Revoked"),
    ("all", "All, with deleted"),
];

/// Sort columns by their name in addresses, each with the direction a first click sorts in.
const SORTS: [(KeySort, &str, bool); 4] = [
    (KeySort::Name, "name", false),
    (KeySort::Created, "created", true),
    (KeySort::LastUsed, "last_used", true),
    (KeySort::Expires, "expires", false),
];

/// One of `allowed`, the value itself as a `'static` string, or `""`.
fn one_of(value: Option<&str>, allowed: &[&'static str]) -> &'static str {
    let v = value.unwrap_or_default().trim();
    allowed.iter().copied().find(|a| *a == v).unwrap_or("")
}

fn text(value: &Option<String>) -> String {
    value.as_deref().unwrap_or_default().trim().to_owned()
}

impl ListParams {
    pub(super) fn from_query(q: &ListQuery) -> ListParams {
        let statuses: Vec<&'static str> = STATUSES.iter().map(|(v, _)| *v).collect();
        let (sort, default_desc) = SORTS
            .iter()
            .find(|(_, name, _)| Some(*name) == q.sort.as_deref())
            .map_or((KeySort::Created, true), |(s, _, d)| (*s, *d));
        let descending = match q.dir.as_deref() {
            Some("asc") => false,
            Some("desc") => true,
            _ => default_desc,
        };
        let per_page = q
            .per_page
            .as_deref()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|p| PAGE_SIZES.contains(p))
            .unwrap_or(PAGE_SIZES[0]);
        let page = q
            .page
            .as_deref()
            .and_then(|p| p.parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 1_000_000);
        ListParams {
            search: text(&q.q).chars().take(200).collect(),
            status: one_of(q.status.as_deref(), &statuses),
            env: one_of(q.env.as_deref(), &["live", "test"]),
            owner: text(&q.owner),
            api: text(&q.api),
            sort,
            descending,
            page,
            per_page,
        }
    }

    /// Whether anything narrows the list.
    fn filtered(&self) -> bool {
        !(self.search.is_empty()
            && self.status.is_empty()
            && self.env.is_empty()
            && self.owner.is_empty()
            && self.api.is_empty())
    }

    fn sort_name(&self) -> &'static str {
        SORTS
            .iter()
            .find(|(s, _, _)| *s == self.sort)
            .map_or("created", |(_, n, _)| n)
    }

    fn default_descending(sort: KeySort) -> bool {
        SORTS
            .iter()
            .find(|(s, _, _)| *s == sort)
            .is_none_or(|(_, _, d)| *d)
    }

    /// The address of the list with these parameters; defaults are left out.
    pub(super) fn url(&self) -> String {
        let page = self.page.to_string();
        let per_page = self.per_page.to_string();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (k, v) in [
            ("q", self.search.as_str()),
            ("status", self.status),
            ("env", self.env),
            ("owner", self.owner.as_str()),
            ("api", self.api.as_str()),
        ] {
            if !v.is_empty() {
                pairs.push((k, v));
            }
        }
        if self.sort != KeySort::Created || !self.descending {
            pairs.push(("sort", self.sort_name()));
            if self.descending != Self::default_descending(self.sort) {
                pairs.push(("dir", if self.descending { "desc" } else { "asc" }));
            }
        }
        if self.per_page != PAGE_SIZES[0] {
            pairs.push(("per_page", &per_page));
        }
        if self.page > 1 {
            pairs.push(("page", &page));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(qs) if !qs.is_empty() => format!("/keys?{qs}"),
            _ => "/keys".to_owned(),
        }
    }

    fn at_page(&self, page: u64) -> ListParams {
        ListParams {
            page,
            ..self.clone()
        }
    }

    fn filter(&self) -> KeyFilter {
        let status = match self.status {
            "active" => Some(StatusFilter::Active),
            "disabled" => Some(StatusFilter::Disabled),
            "expired" => Some(StatusFilter::Expired),
            "revoked" => Some(StatusFilter::Revoked),
            "all" => Some(StatusFilter::All),
            _ => None,
        };
        let non_empty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        KeyFilter {
            api_id: non_empty(&self.api),
            owner_id: non_empty(&self.owner),
            status,
            environment: Environment::parse(self.env),
            search: non_empty(&self.search),
            order: KeyOrder {
                by: self.sort,
                descending: self.descending,
            },
            limit: self.per_page,
            offset: (self.page - 1) * u64::from(self.per_page),
            cursor: None,
        }
    }
}

/// Everything the list page shows.
pub(super) struct ListData {
    pub(super) keys: Vec<Key>,
    /// Keys that match, on every page.
    pub(super) total: i64,
    pub(super) params: ListParams,
    pub(super) apis: Vec<Api>,
    pub(super) members: Vec<User>,
    pub(super) acls: Vec<IpAcl>,
    pub(super) groups: Vec<KeyGroup>,
}

pub(super) async fn load_list(
    state: &AppState,
    m: &Member,
    mut params: ListParams,
) -> Result<ListData, ServiceError> {
    let (mut keys, total) = keys::search(&state.ctx, &m.caller, &params.filter()).await?;
    // Past the last page (keys revoked or deleted meanwhile, an old link): the last page instead.
    let pages = page_count(total, params.per_page);
    if keys.is_empty() && params.page > pages {
        params.page = pages;
        keys = keys::search(&state.ctx, &m.caller, &params.filter())
            .await?
            .0;
    }
    let apis = apis::list(&state.ctx, &m.caller).await?;
    let members = members(state, m).await?;
    let acls = crate::service::acls::list(&state.ctx, &m.caller).await?;
    let groups = crate::service::groups::list(&state.ctx, &m.caller).await?;
    Ok(ListData {
        keys,
        total,
        params,
        apis,
        members,
        acls,
        groups,
    })
}

fn page_count(total: i64, per_page: u32) -> u64 {
    u64::try_from(total)
        .unwrap_or(0)
        .div_ceil(u64::from(per_page))
        .max(1)
}

pub(super) async fn list_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<ListQuery>,
) -> Response {
    let data = match load_list(&state, &m, ListParams::from_query(&q)).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&m), e),
    };
    // The key just created: its secret, held for this session, is shown this once.
    let Some(new_id) = q.new.as_deref().filter(|id| !id.is_empty()) else {
        return page(&m, StatusCode::OK, render_list(&m, &data, None, None, None));
    };
    let secret = match sessions::take_secret(&state.ctx, &m.session, new_id).await {
        Ok(s) => s,
        Err(e) => return error_page(Some(&m), e),
    };
    let key = match keys::get(&state.ctx, &m.caller, new_id).await {
        Ok(k) => k,
        Err(e) => return error_page(Some(&m), e),
    };
    match &secret {
        Some(secret) => {
            let fresh = Fresh {
                key: &key,
                secret,
                rotated: None,
                return_to: data.params.url(),
            };
            page(
                &m,
                StatusCode::OK,
                render_list(&m, &data, None, Some(&fresh), None),
            )
        }
        None => {
            let notice = shown_once_notice(&key);
            page(
                &m,
                StatusCode::OK,
                render_list(&m, &data, None, None, Some(notice)),
            )
        }
    }
}

/// What a page says when it would show a secret that was already shown (a reload, a link).
pub(super) fn shown_once_notice(k: &Key) -> Markup {
    html! {
        div class="notice warning" role="status" {
            "The full key of " strong { (k.name) } " (" code { (masked(k)) } ") was shown once and is not shown again. "
            "If you did not save it, rotate the key to get a new one."
        }
    }
}

pub(super) fn render_list(
    m: &Member,
    data: &ListData,
    create: Option<&CreateState<'_>>,
    fresh: Option<&Fresh<'_>>,
    notice: Option<Markup>,
) -> Markup {
    let now = m.now;
    let p = &data.params;
    let can_create = m.actions.create_keys;
    let actions = html! {
        @if can_create {
            button type="button" class="btn primary" data-open="create-key" { "+ Create key" }
        }
    };
    let rows: Vec<(&Key, bool)> = data
        .keys
        .iter()
        .map(|k| {
            let api = data.apis.iter().find(|a| a.id == k.api_id);
            (k, key_actions(m, k, api, &data.members).revoke)
        })
        .collect();
    let selectable = rows.iter().any(|(_, revocable)| *revocable);
    let content = html! {
        (page_header("API keys", Some(html! {
            "Keys let your services and integrations call your APIs. Each one is shown in full only once."
        }), actions))
        @if let Some(n) = notice { (n) }
        (filters(p, data))
        @if data.keys.is_empty() {
            (empty_state(m, p))
        } @else {
            @if !p.filtered() && p.page == 1 && !data.keys.iter().any(|k| !is_management(data, k)) {
                (empty_state(m, p))
                h2 class="section-title" { "Management keys" }
                p class="muted" { "Keys of Keyward's own management API, for scripts and the CLI." }
            }
            div class="list-bar" {
                p class="list-count" id="keys-count" { (count_text(p, data.total, data.keys.len())) }
                @if selectable {
                    form id="bulk-select" class="bulk-bar" method="get" action="/keys/revoke" {
                        input type="hidden" name="return" value=(p.url());
                        span class="bulk-count" role="status" data-bulk-count { "Select keys to revoke several at once." }
                        button type="submit" class="btn small danger-outline" data-bulk-open="bulk-revoke" { "Revoke selected" }
                    }
                }
            }
            div class="table-wrap" {
                table class="table keys-table" aria-describedby="keys-count" {
                    caption class="visually-hidden" { "API keys" }
                    thead {
                        tr {
                            th scope="col" class="col-select" {
                                @if selectable {
                                    input type="checkbox" data-bulk-all hidden aria-label="Select every key on this page";
                                }
                            }
                            (sort_header(p, KeySort::Name, "Name"))
                            th scope="col" { "Env" }
                            th scope="col" { "Access" }
                            (sort_header(p, KeySort::Expires, "Expires"))
                            (sort_header(p, KeySort::LastUsed, "Last used"))
                            (sort_header(p, KeySort::Created, "Created"))
                            th scope="col" { "Status" }
                            th scope="col" { span class="visually-hidden" { "Actions" } }
                        }
                    }
                    tbody {
                        @for (k, revocable) in &rows { (key_row(m, k, *revocable, data, now)) }
                    }
                }
            }
            (pager(p, data.total))
        }
        @if can_create {
            (create_dialog(m, &data.apis, &data.members, &data.acls, &data.groups, &m.org, create))
        }
        (delete_dialog(m, None, false))
        @if selectable { (bulk_dialog(m, p)) }
        @if let Some(f) = fresh { (fresh_dialog(f, now)) }
    };
    layout::shell(m, Nav::Keys, "API keys", content)
}

fn count_text(p: &ListParams, total: i64, shown: usize) -> String {
    let noun = if total == 1 { "key" } else { "keys" };
    if total as u64 <= u64::from(p.per_page) && p.page == 1 {
        return format!("{total} {noun}");
    }
    let first = (p.page - 1) * u64::from(p.per_page) + 1;
    let last = first + shown as u64 - 1;
    format!("{first}–{last} of {total} {noun}")
}

fn pager(p: &ListParams, total: i64) -> Markup {
    let pages = page_count(total, p.per_page);
    html! {
        @if pages > 1 {
            nav class="pager" aria-label="Pages of keys" {
                @if p.page > 1 {
                    a class="btn" href=(p.at_page(p.page - 1).url()) rel="prev" { "← Previous" }
                } @else {
                    span class="btn" aria-disabled="true" { "← Previous" }
                }
                span class="pager-position" { "Page " (p.page) " of " (pages) }
                @if p.page < pages {
                    a class="btn" href=(p.at_page(p.page + 1).url()) rel="next" { "Next →" }
                } @else {
                    span class="btn" aria-disabled="true" { "Next →" }
                }
            }
        }
    }
}

/// A column heading that sorts the list by its column: ascending or descending on each click.
fn sort_header(p: &ListParams, by: KeySort, label: &str) -> Markup {
    let current = p.sort == by;
    let descending = if current {
        !p.descending
    } else {
        ListParams::default_descending(by)
    };
    let target = ListParams {
        sort: by,
        descending,
        page: 1,
        ..p.clone()
    };
    let sorted = current.then_some(if p.descending {
        "descending"
    } else {
        "ascending"
    });
    html! {
        th scope="col" aria-sort=[sorted] {
            a class={ "sort" @if current { " sorted" } } href=(target.url()) {
                (label)
                span class="sort-icon" aria-hidden="true" {
                    @match sorted { Some("descending") => "▼", Some(_) => "▲", None => "↕" }
                }
                span class="visually-hidden" {
                    @if descending { ", sort descending" } @else { ", sort ascending" }
                }
            }
        }
    }
}

fn is_management(data: &ListData, k: &Key) -> bool {
    data.apis
        .iter()
        .any(|a| a.id == k.api_id && a.is_management())
}

fn filters(p: &ListParams, data: &ListData) -> Markup {
    let (sort, descending) = (p.sort_name(), p.descending);
    let keeps_order = p.sort != KeySort::Created || !descending;
    html! {
        form class="filters" method="get" action="/keys" role="search" aria-label="Search and filter keys" {
            div class="filter filter-search" {
                label for="filter-q" { "Search" }
                input type="search" id="filter-q" name="q" value=(p.search) maxlength="200"
                    placeholder="Name, prefix or id" autocomplete="off" spellcheck="false";
            }
            div class="filter" {
                label for="filter-status" { "Status" }
                select id="filter-status" name="status" data-autosubmit {
                    @for (v, label) in STATUSES {
                        option value=(v) selected[p.status == v] { (label) }
                    }
                }
            }
            div class="filter" {
                label for="filter-env" { "Environment" }
                select id="filter-env" name="env" data-autosubmit {
                    @for (v, label) in [("", "Live and test"), ("live", "Live"), ("test", "Test")] {
                        option value=(v) selected[p.env == v] { (label) }
                    }
                }
            }
            div class="filter" {
                label for="filter-owner" { "Owner" }
                select id="filter-owner" name="owner" data-autosubmit {
                    option value="" selected[p.owner.is_empty()] { "Anyone" }
                    @for u in &data.members {
                        option value=(u.id) selected[p.owner == u.id] {
                            @if u.name.is_empty() { (u.email) } @else { (u.name) " · " (u.email) }
                        }
                    }
                }
            }
            @if data.apis.len() > 1 {
                div class="filter" {
                    label for="filter-api" { "API" }
                    select id="filter-api" name="api" data-autosubmit {
                        option value="" selected[p.api.is_empty()] { "Every API" }
                        @for a in &data.apis {
                            option value=(a.id) selected[p.api == a.id] { (a.name) }
                        }
                    }
                }
            }
            @if keeps_order {
                input type="hidden" name="sort" value=(sort);
                input type="hidden" name="dir" value=(if descending { "desc" } else { "asc" });
            }
            @if p.per_page != PAGE_SIZES[0] {
                input type="hidden" name="per_page" value=(p.per_page);
            }
            div class="filter filter-actions" {
                button type="submit" class="btn" { "Search" }
                @if p.filtered() { a class="btn ghost" href="/keys" { "Clear" } }
            }
        }
    }
}

fn empty_state(m: &Member, p: &ListParams) -> Markup {
    html! {
        div class="card empty" {
            @if p.filtered() {
                h2 { "No keys match" }
                p {
                    @if !p.search.is_empty() { "Nothing matches “" (p.search) "” with these filters. " }
                    "Try another search, status or owner, or " a href="/keys" { "clear the filters" } "."
                }
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

fn key_row(m: &Member, k: &Key, revocable: bool, data: &ListData, now: Millis) -> Markup {
    let protected_apis = data.apis.iter().filter(|a| !a.is_management()).count();
    let api = data.apis.iter().find(|a| a.id == k.api_id);
    let may = key_actions(m, k, api, &data.members);
    let management = api.is_some_and(Api::is_management);
    let api_name = api
        .filter(|a| protected_apis > 1 && !a.is_management())
        .map(|a| a.name.as_str());
    html! {
        tr data-key-id=(k.id) {
            td class="col-select" {
                @if revocable {
                    input type="checkbox" form="bulk-select" name="id" value=(k.id) data-bulk-item
                        data-name=(k.name) data-prefix=(masked(k)) aria-label={ "Select " (k.name) };
                }
            }
            td data-label="Name" class="col-name" {
                a class="key-name" href={ "/keys/" (k.id) } { (k.name) }
                div class="key-line" {
                    // May wrap after the API's prefix, in a narrow column.
                    code class="prefix" { (k.key_prefix) wbr; (k.public_id()) "••••" }
                    @if may.reveal {
                        " " a class="icon-link" href={ "/keys/" (k.id) "?dialog=reveal" }
                            aria-label={ "Reveal the full key of " (k.name) } title="Reveal the full key" { (eye()) }
                    }
                }
                div class="muted small key-meta" {
                    (member_short(&data.members, &k.owner_id))
                    " · " (k.token_type)
                    @if let Some(a) = api_name { " · " (a) }
                    @if management { " " span class="badge neutral" title="A key of Keyward's own management API" { "management" } }
                }
            }
            td data-label="Environment" { (environment_badge(k.environment)) }
            td data-label="Access" {
                (scope_summary(&k.effective_scopes()))
                @if !k.group_ids.is_empty() {
                    div class="small key-groups" {
                        "Groups: "
                        @for (i, g) in k.group_ids.iter().enumerate() {
                            @if i > 0 { ", " }
                            (data.groups.iter().find(|x| &x.id == g).map_or(g.as_str(), |x| x.name.as_str()))
                        }
                    }
                }
                div class="muted small" { (allowlist_summary(k, &data.acls)) }
            }
            td data-label="Expires" class="col-date" {
                @match k.expires_at {
                    None => span class="muted" { "Never" },
                    Some(t) => (time_date(t)),
                }
            }
            td data-label="Last used" class="col-date" data-last-used=(k.id) {
                @match k.last_used_at {
                    Some(t) => (time_ago(now, t)),
                    None => span class="muted" { "Never" },
                }
            }
            td data-label="Created" class="col-date" { (time_date(k.created_at)) }
            td data-label="Status" { div class="badges" { (status_badges(k, now)) } }
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

pub(super) fn environment_badge(env: Environment) -> Markup {
    match env {
        Environment::Live => {
            html! { span class="badge neutral" title="Live: for production traffic" { "live" } }
        }
        Environment::Test => {
            html! { span class="badge test" title="Test: carries the API's test prefix" { "test" } }
        }
    }
}

/// The first scopes of a key, and how many more it has, for the list.
fn scope_summary(scopes: &[String]) -> Markup {
    const SHOWN: usize = 2;
    html! {
        @if scopes.is_empty() {
            (scope_chips(scopes))
        } @else if scopes.len() <= SHOWN + 1 {
            ul class="chips" {
                @for s in scopes { li class="chip" { code { (breakable(s)) } } }
            }
        } @else {
            ul class="chips" title=(scopes.join(", ")) {
                @for s in &scopes[..SHOWN] { li class="chip" { code { (breakable(s)) } } }
                li class="muted small" { "+" (scopes.len() - SHOWN) " more" }
            }
        }
    }
}

/// A scope name that may wrap after its separators (`transcripts:` / `read`) in a narrow column,
/// rather than between any two letters.
fn breakable(name: &str) -> Markup {
    let parts: Vec<&str> = name.split_inclusive([':', '.']).collect();
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if i > 0 { wbr; }
            (part)
        }
    }
}

/// Where a key may be used from, in a few words.
fn allowlist_summary(k: &Key, acls: &[IpAcl]) -> Markup {
    let nets = &k.ip_allowlist;
    let acl_names: Vec<&str> = k
        .ip_acl_ids
        .iter()
        .map(|id| {
            acls.iter()
                .find(|a| &a.id == id)
                .map_or(id.as_str(), |a| a.name.as_str())
        })
        .collect();
    if !acl_names.is_empty() {
        return html! {
            span title="IP ACLs" { "ACL " (acl_names.join(", ")) }
            @if !nets.is_empty() { " +" (nets.len()) " own" }
        };
    }
    html! {
        @match nets.len() {
            0 => "Any IP",
            1 => code title="IP allowlist" { (nets[0]) },
            n => span title=(nets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) {
                code { (nets[0]) } " +" (n - 1) " more"
            },
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

/// The confirmation of a bulk revoke, filled by the script from the keys selected; without the
/// script, [`super::bulk`] shows the same form on a page of its own.
fn bulk_dialog(m: &Member, p: &ListParams) -> Markup {
    dialog(
        "bulk-revoke",
        "Revoke keys",
        false,
        false,
        html! {
            form method="post" action="/keys/revoke" class="dialog-form" data-bulk-form {
                div class="dialog-body" {
                    (csrf_field(m))
                    input type="hidden" name="return" value=(p.url());
                    p {
                        "Revoke " strong data-bulk-fill="count" { "the selected keys" } "? Every request that uses them is refused at once. "
                        "They stay in the list as revoked."
                    }
                    ul class="bulk-names" data-bulk-names {}
                    (layout::input("bulk-reason", "reason", "Reason (optional)", "", &crate::dashboard::FieldErrors::default(), layout::Input {
                        maxlength: Some(500), placeholder: Some("e.g. contractor left"),
                        hint: Some("Kept in the audit log with each key."), ..layout::Input::default() }))
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close autofocus { "Cancel" }
                    button type="submit" class="btn danger" data-bulk-fill="submit" { "Revoke keys" }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> ListParams {
        let q: ListQuery = serde_urlencoded::from_str(query).unwrap();
        ListParams::from_query(&q)
    }

    #[test]
    fn the_list_reads_its_address_leniently_and_writes_it_back_without_defaults() {
        assert_eq!(params("").url(), "/keys");
        assert_eq!(
            params("status=bogus&env=prod&sort=hash;drop&dir=up&page=-3&per_page=7").url(),
            "/keys",
            "unknown values fall back to the defaults"
        );
        let p = params("q=%20nightly%20&status=disabled&env=test&sort=name&page=2&per_page=25");
        assert_eq!(p.search, "nightly");
        assert_eq!(p.filter().status, Some(StatusFilter::Disabled));
        assert_eq!(p.filter().environment, Some(Environment::Test));
        assert_eq!(p.filter().offset, 25);
        assert_eq!(
            p.url(),
            "/keys?q=nightly&status=disabled&env=test&sort=name&per_page=25&page=2"
        );
        assert_eq!(
            params("sort=name&dir=desc").url(),
            "/keys?sort=name&dir=desc"
        );
        assert_eq!(params("sort=created&dir=desc").url(), "/keys");
    }

    #[test]
    fn counts_name_the_rows_shown_and_the_total() {
        let p = params("per_page=25&page=2");
        assert_eq!(count_text(&p, 30, 5), "26–30 of 30 keys");
        assert_eq!(count_text(&params(""), 1, 1), "1 key");
        assert_eq!(page_count(0, 50), 1);
        assert_eq!(page_count(51, 50), 2);
    }
}
