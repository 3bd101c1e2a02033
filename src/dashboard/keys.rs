//! Settings → API keys: the list with its filters, the create dialog, the one-time display of a
//! new key, and a key's page with its edit, rotate, revoke and delete dialogs.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;
use time::OffsetDateTime;
use time::macros::format_description;

use super::audit::event_row;
use super::layout::{
    self, Input, Nav, badge, csrf_field, described_by, dialog, field, form_errors, input,
    page_header, time_ago, time_date,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::domain::key::SecretKey;
use crate::domain::model::{
    Api, Environment, ExpiryChoice, Key, KeyStatus, Millis, Org, RateLimit, Refill, RefillInterval,
    User,
};
use crate::http::AppState;
use crate::http::views::{decode_cursor, encode_cursor};
use crate::service::keys::{self, CreateKey, QuotaInput, RevokeKey, RotateKey, UpdateKey};
use crate::service::{ServiceError, apis, audit, users};
use crate::store::{AuditFilter, KeyFilter, StatusFilter};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/keys", get(list_page).post(create))
        .route("/keys/{id}", get(detail_page))
        .route("/keys/{id}/edit", post(edit))
        .route("/keys/{id}/rotate", post(rotate))
        .route("/keys/{id}/revoke", post(revoke))
        .route("/keys/{id}/delete", post(delete))
}

/// Keys per page of the list.
const PAGE_SIZE: u32 = 50;
/// A key expiring within this many days carries an "Expires soon" badge.
const EXPIRES_SOON_DAYS: i64 = 30;

/// Grace periods offered when rotating, in seconds.
const GRACE_CHOICES: &[(i64, &str)] = &[
    (0, "None: the old key stops working now"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (7 * 86_400, "7 days"),
    (keys::GRACE_MAX_S, "14 days"),
];

/// Rate limit periods offered, in seconds.
const PERIODS: &[(u32, &str)] = &[
    (1, "per second"),
    (60, "per minute"),
    (3600, "per hour"),
    (86_400, "per day"),
];

fn type_description(t: &str) -> Option<&'static str> {
    match t {
        "standard" => Some("General purpose: any request the scopes allow."),
        "batch" => Some("Jobs that upload work and collect the results later."),
        "realtime" => Some("Live, streaming requests."),
        _ => None,
    }
}

// -------------------------------------------------------------------- what a member may do

/// May the member edit or rotate this key (the service's rule: admins, or its owner)?
fn may_edit(m: &Member, k: &Key) -> bool {
    m.can("keys:write") && (m.caller.user.role.manages_all_keys() || k.owner_id == m.caller.user.id)
}

/// May the member revoke or delete this key (admins, its owner, or its creator)?
fn may_delete(m: &Member, k: &Key) -> bool {
    m.can("keys:delete")
        && (m.caller.user.role.manages_all_keys()
            || k.owner_id == m.caller.user.id
            || k.created_by == m.caller.user.id)
}

/// May the member reveal this key: recoverable, still live, and a role holding `keys:reveal`?
fn may_reveal(m: &Member, k: &Key, now: Millis) -> bool {
    k.recoverable && m.can("keys:reveal") && is_live(k, now)
}

fn is_live(k: &Key, now: Millis) -> bool {
    !matches!(k.status(now), KeyStatus::Revoked | KeyStatus::Deleted)
}

// -------------------------------------------------------------------- rendering helpers

fn masked(k: &Key) -> String {
    format!("{}••••", k.display_prefix())
}

fn status_badge(k: &Key, now: Millis) -> Markup {
    let status = k.status(now);
    let kind = match status {
        KeyStatus::Active => "success",
        KeyStatus::Disabled | KeyStatus::Deleted => "neutral",
        KeyStatus::Expired => "warning",
        KeyStatus::Revoked => "danger",
    };
    let label = match status {
        KeyStatus::Active => "Active",
        KeyStatus::Disabled => "Disabled",
        KeyStatus::Expired => "Expired",
        KeyStatus::Revoked => "Revoked",
        KeyStatus::Deleted => "Deleted",
    };
    html! {
        (badge(kind, label))
        @if status == KeyStatus::Active && k.revoked_at.is_some() {
            " " span class="badge warning" title="Rotated: this key stops working at the end of its grace period" {
                "Stops " (layout::relative(now, k.revoked_at.unwrap_or(now)))
            }
        }
    }
}

fn expiry_cell(k: &Key, now: Millis) -> Markup {
    html! {
        @match k.expires_at {
            None => span class="muted" { "Never" },
            Some(t) => {
                (time_date(t))
                @if t > now && t - now <= EXPIRES_SOON_DAYS * 86_400_000 && is_live(k, now) {
                    " " span class="badge warning" { "Expires soon" }
                }
            }
        }
    }
}

fn scope_chips(scopes: &[String]) -> Markup {
    html! {
        @if scopes.is_empty() {
            span class="muted" { "None" }
        } @else {
            ul class="chips" {
                @for s in scopes { li class="chip" { code { (s) } } }
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

fn member_label(members: &[User], id: &str) -> String {
    members
        .iter()
        .find(|u| u.id == id)
        .map(|u| {
            if u.name.is_empty() {
                u.email.clone()
            } else {
                format!("{} ({})", u.name, u.email)
            }
        })
        .unwrap_or_else(|| id.to_owned())
}

fn rate_limit_text(rl: &RateLimit) -> String {
    match PERIODS.iter().find(|(s, _)| *s == rl.per_seconds) {
        Some((_, per)) => format!("{} requests {per}", rl.requests),
        None => format!("{} requests per {} s", rl.requests, rl.per_seconds),
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A date input's `YYYY-MM-DD` as midnight UTC.
fn parse_date(s: &str) -> Option<Millis> {
    let d = time::Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
    Some(d.midnight().assume_utc().unix_timestamp() * 1000)
}

fn date_value(ms: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(format_description!("[year]-[month]-[day]")).ok())
        .unwrap_or_default()
}

/// Reads the optional rate limit of a form; a half-filled one is an error of `rate_limit`.
pub(super) fn parse_rate_limit(form: &FormData, errors: &mut FieldErrors) -> Option<RateLimit> {
    let requests = form.text("rate_requests");
    if requests.is_empty() {
        return None;
    }
    let per_seconds = form.text("rate_per").parse::<u32>().unwrap_or(60);
    match requests.parse::<u32>() {
        Ok(requests) => Some(RateLimit {
            requests,
            per_seconds,
        }),
        Err(_) => {
            errors.add(
                "rate_limit",
                "the number of requests must be a whole number",
            );
            None
        }
    }
}

/// Reads the optional quota of a form: the uses allowed and, optionally, how often they are
/// refilled and to how many (by default, as many as allowed at first).
fn parse_quota(form: &FormData, errors: &mut FieldErrors) -> Option<QuotaInput> {
    let interval = match form.text("quota_refill") {
        "daily" => Some(RefillInterval::Daily),
        "monthly" => Some(RefillInterval::Monthly),
        _ => None,
    };
    let remaining = form.text("quota_remaining").trim();
    if remaining.is_empty() {
        if interval.is_some() {
            errors.add(
                "quota",
                "set the number of uses to refill, or choose no refill",
            );
        }
        return None;
    }
    let Ok(remaining) = remaining.parse::<i64>() else {
        errors.add("quota", "the number of uses must be a whole number");
        return None;
    };
    let refill = match interval {
        None => None,
        Some(interval) => {
            let amount = form.text("quota_refill_amount").trim();
            if amount.is_empty() {
                Some(Refill {
                    interval,
                    amount: remaining,
                })
            } else if let Ok(amount) = amount.parse::<i64>() {
                Some(Refill { interval, amount })
            } else {
                errors.add("quota", "the refill amount must be a whole number");
                return None;
            }
        }
    };
    Some(QuotaInput { remaining, refill })
}

/// Reads the optional metadata of a form: a JSON object.
fn parse_metadata(
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

fn metadata_field(id: &str, value: &str, errors: &FieldErrors) -> Markup {
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

/// A key's metadata as the edit form shows it: pretty JSON, or nothing when there is none.
fn metadata_text(k: &Key) -> String {
    if k.metadata.is_empty() {
        String::new()
    } else {
        serde_json::to_string_pretty(&k.metadata).unwrap_or_default()
    }
}

fn quota_fields(id: &str, form: &FormData, errors: &FieldErrors) -> Markup {
    let error = errors.of("quota");
    let refill = form.text("quota_refill");
    html! {
        fieldset class={ "field" @if error.is_some() { " has-error" } } {
            legend { "Quota " span class="optional" { "optional" } }
            div class="inline-fields" {
                label class="visually-hidden" for={ (id) "-remaining" } { "Uses allowed" }
                input id={ (id) "-remaining" } name="quota_remaining" type="number" min="0"
                    inputmode="numeric" placeholder="Uses, e.g. 10000" value=(form.text("quota_remaining"))
                    aria-describedby={ (id) "-hint " (id) "-error" }
                    aria-invalid=[error.is_some().then_some("true")];
                label class="visually-hidden" for={ (id) "-refill" } { "Refill" }
                select id={ (id) "-refill" } name="quota_refill" {
                    option value="" selected[refill.is_empty()] { "Never refilled" }
                    option value="daily" selected[refill == "daily"] { "Refilled daily" }
                    option value="monthly" selected[refill == "monthly"] { "Refilled monthly" }
                }
                label class="visually-hidden" for={ (id) "-amount" } { "Refill amount" }
                input id={ (id) "-amount" } name="quota_refill_amount" type="number" min="1"
                    inputmode="numeric" placeholder="Refill to" value=(form.text("quota_refill_amount"))
                    aria-describedby={ (id) "-hint " (id) "-error" };
            }
            p class="hint" id={ (id) "-hint" } {
                "Leave empty for unlimited use. Each verification spends its cost; with none left the key answers 429 until it is refilled (by default to the uses allowed)."
            }
            p class="field-error" id={ (id) "-error" } role="alert" hidden[error.is_none()] {
                @if let Some(e) = &error { (e) }
            }
        }
    }
}

pub(super) fn rate_limit_fields(
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

fn allowlist_field(id: &str, value: &str, errors: &FieldErrors) -> Markup {
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

fn scope_checkboxes(
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
                    "This API has no scope catalogue yet; its keys carry no scopes. Add scopes on the "
                    a href="/apis" { "APIs" } " page or with the API."
                }
            } @else {
                p class="hint" id={ (id) "-hint" } { "What the key may do. Grant only what the integration needs." }
                div class="checkbox-list" {
                    @for (i, s) in api.scopes.iter().enumerate() {
                        @let cid = format!("{id}-{i}");
                        @let grantable = !api.is_management() || m.can(&s.name);
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

// -------------------------------------------------------------------- the list

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
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
struct ListData {
    keys: Vec<Key>,
    next_cursor: Option<String>,
    apis: Vec<Api>,
    members: Vec<User>,
}

async fn load_list(state: &AppState, m: &Member, q: &ListQuery) -> Result<ListData, ServiceError> {
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

/// The organization's members, for owner names and the owner filter.
async fn members(state: &AppState, m: &Member) -> Result<Vec<User>, ServiceError> {
    users::list(&state.ctx, &m.caller).await
}

async fn list_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<ListQuery>,
) -> Response {
    match load_list(&state, &m, &q).await {
        Ok(data) => page(&m, StatusCode::OK, render_list(&m, &q, &data, None, None)),
        Err(e) => error_page(Some(&m), e),
    }
}

/// The state of the create dialog after a refused submission.
struct CreateState<'a> {
    form: &'a FormData,
    errors: FieldErrors,
}

/// A key just created or rotated, shown once.
struct Fresh<'a> {
    key: &'a Key,
    secret: &'a SecretKey,
    rotated: Option<&'a Key>,
    /// Where the browser's address goes once the dialog closes.
    return_to: String,
}

fn render_list(
    m: &Member,
    q: &ListQuery,
    data: &ListData,
    create: Option<&CreateState<'_>>,
    fresh: Option<&Fresh<'_>>,
) -> Markup {
    let now = m.now;
    let can_create = m.can("keys:write");
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
                @if m.can("keys:write") {
                    button type="button" class="btn primary" data-open="create-key" { "+ Create your first key" }
                } @else {
                    p class="muted" { "Your role can view keys but not create them." }
                }
            }
        }
    }
}

fn key_row(m: &Member, k: &Key, data: &ListData, now: Millis) -> Markup {
    let editable = may_edit(m, k) && is_live(k, now);
    let deletable = may_delete(m, k) && k.deleted_at.is_none();
    let revocable = may_delete(m, k) && is_live(k, now);
    let protected_apis = data.apis.iter().filter(|a| !a.is_management()).count();
    let api = data.apis.iter().find(|a| a.id == k.api_id);
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
                @if may_reveal(m, k, now) {
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
                        @if editable {
                            a href={ "/keys/" (k.id) "?dialog=edit" } { "Edit" }
                            a href={ "/keys/" (k.id) "?dialog=rotate" } { "Rotate" }
                        }
                        @if revocable {
                            a href={ "/keys/" (k.id) "?dialog=revoke" } { "Revoke" }
                        }
                        @if deletable {
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

// -------------------------------------------------------------------- create

fn default_api(apis: &[Api]) -> Option<&Api> {
    apis.iter()
        .find(|a| a.slug == "default")
        .or_else(|| apis.iter().find(|a| !a.is_management()))
        .or_else(|| apis.first())
}

fn default_expiry(org: &Org) -> &'static str {
    let allowed = &org.policies.allowed_expiries;
    if allowed.contains(&ExpiryChoice::Never) {
        "never"
    } else {
        allowed
            .iter()
            .max_by_key(|c| c.years())
            .map(|c| c.as_str())
            .unwrap_or("date")
    }
}

/// How an expiry choice reads in forms.
pub(super) fn expiry_label(c: ExpiryChoice) -> &'static str {
    match c {
        ExpiryChoice::OneYear => "1 year",
        ExpiryChoice::TwoYears => "2 years",
        ExpiryChoice::FiveYears => "5 years",
        ExpiryChoice::Never => "Never",
    }
}

fn create_dialog(
    m: &Member,
    apis: &[Api],
    members: &[User],
    org: &Org,
    state: Option<&CreateState<'_>>,
) -> Markup {
    let empty = FormData::default();
    let no_errors = FieldErrors::default();
    let (form, errors) = match state {
        Some(s) => (s.form, &s.errors),
        None => (&empty, &no_errors),
    };
    let chosen_api = form
        .get("api_id")
        .and_then(|id| apis.iter().find(|a| a.id == id))
        .or_else(|| default_api(apis));
    let expires = form.get("expires").unwrap_or(default_expiry(org));
    let owner = form.get("owner_id").unwrap_or(&m.caller.user.id);
    let shown = [
        "name",
        "description",
        "api_id",
        "type",
        "scopes",
        "ip_allowlist",
        "expires",
        "expires_at",
        "rate_limit",
        "quota",
        "metadata",
        "owner_id",
        "environment",
        "recoverable",
    ];
    let min_date = date_value(m.now + 86_400_000);
    let expires_error = errors.of("expires").or_else(|| errors.of("expires_at"));
    dialog(
        "create-key",
        "Create API key",
        state.is_some(),
        true,
        html! {
            form method="post" action="/keys" class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&shown)))
                    (input("create-name", "name", "Name", form.text("name"), errors, Input {
                        required: true, maxlength: Some(100), autofocus: true,
                        placeholder: Some("e.g. Production integration"),
                        hint: Some("Say what uses the key, so you know what breaks if you revoke it."),
                        ..Input::default() }))
                    (field("create-description", "Description (optional)", None, errors, "description", html! {
                        textarea id="create-description" name="description" rows="2" maxlength="500"
                            aria-describedby=(described_by("create-description", false)) { (form.text("description")) }
                    }))
                    @if apis.len() > 1 {
                        (field("create-api", "API", Some("The service this key is for."), errors, "api_id", html! {
                            select id="create-api" name="api_id" data-api-select
                                aria-describedby=(described_by("create-api", true)) {
                                @for a in apis {
                                    option value=(a.id) selected[chosen_api.is_some_and(|c| c.id == a.id)] {
                                        (a.name) @if a.is_management() { " (management keys)" }
                                    }
                                }
                            }
                        }))
                    } @else if let Some(a) = chosen_api {
                        input type="hidden" name="api_id" value=(a.id);
                    }
                    @for a in apis {
                        @let current = chosen_api.is_some_and(|c| c.id == a.id);
                        @let type_name = format!("type:{}", a.id);
                        @let chosen_type = form.get(&type_name).unwrap_or("standard");
                        div class="api-options" data-api=(a.id) hidden[!current] {
                            @let type_error = errors.of("type");
                            fieldset class={ "field" @if type_error.is_some() { " has-error" } } disabled[!current] {
                                legend { "Type" }
                                div class="radio-cards" {
                                    @for t in &a.token_types {
                                        @let rid = format!("create-type-{}-{t}", a.id);
                                        label class="radio-card" for=(rid) {
                                            input type="radio" id=(rid) name=(type_name) value=(t)
                                                checked[chosen_type == t || (a.token_types.len() == 1)];
                                            span class="radio-title" { (t) }
                                            @if let Some(d) = type_description(t) { span class="radio-desc" { (d) } }
                                        }
                                    }
                                }
                                p class="field-error" role="alert" hidden[type_error.is_none()] {
                                    @if let Some(e) = &type_error { (e) }
                                }
                            }
                            fieldset class="plain" disabled[!current] {
                                @let checked: Vec<String> = form.all(&format!("scopes:{}", a.id)).into_iter().map(str::to_owned).collect();
                                (scope_checkboxes(m, &format!("create-scopes-{}", a.id), &format!("scopes:{}", a.id), a, &checked, errors))
                            }
                        }
                    }
                    fieldset class={ "field" @if expires_error.is_some() { " has-error" } } {
                        legend { "Expires" }
                        div class="segmented" {
                            @for c in &org.policies.allowed_expiries {
                                @let rid = format!("create-expires-{}", c.as_str());
                                input type="radio" id=(rid) name="expires" value=(c.as_str()) checked[expires == c.as_str()];
                                label for=(rid) { (expiry_label(*c)) }
                            }
                            input type="radio" id="create-expires-date" name="expires" value="date" checked[expires == "date"] data-toggles="expires-date-row";
                            label for="create-expires-date" { "On a date" }
                        }
                        div id="expires-date-row" class="date-row" hidden[expires != "date"] {
                            label for="create-expires-on" { "Expiry date (UTC)" }
                            input type="date" id="create-expires-on" name="expires_on" min=(min_date)
                                value=(form.text("expires_on"));
                        }
                        @if !org.policies.allowed_expiries.contains(&ExpiryChoice::Never) {
                            p class="hint" { "Your organization's policy requires keys to expire." }
                        }
                        p class="field-error" role="alert" hidden[expires_error.is_none()] {
                            @if let Some(e) = &expires_error { (e) }
                        }
                    }
                    (allowlist_field("create-ip", form.text("ip_allowlist"), errors))
                    (rate_limit_fields("create-rate", form.text("rate_requests"), form.text("rate_per"), errors))
                    (quota_fields("create-quota", form, errors))
                    details class="more-options" open[errors.of("owner_id").is_some() || errors.of("environment").is_some() || errors.of("metadata").is_some()] {
                        summary { "More options" }
                        (metadata_field("create-metadata", form.text("metadata"), errors))
                        (field("create-env", "Environment", Some("Test keys carry the API's test prefix."), errors, "environment", html! {
                            select id="create-env" name="environment" aria-describedby=(described_by("create-env", true)) {
                                option value="live" selected[form.text("environment") != "test"] { "Live" }
                                option value="test" selected[form.text("environment") == "test"] { "Test" }
                            }
                        }))
                        @if m.caller.user.role.manages_all_keys() && members.len() > 1 {
                            (field("create-owner", "Owner", Some("The member the key belongs to. It stops working if they leave."), errors, "owner_id", html! {
                                select id="create-owner" name="owner_id" aria-describedby=(described_by("create-owner", true)) {
                                    @for u in members.iter().filter(|u| u.status == crate::domain::model::UserStatus::Active) {
                                        option value=(u.id) selected[owner == u.id] { (u.email) }
                                    }
                                }
                            }))
                        }
                        @if org.policies.recoverable_keys {
                            label class="checkbox" for="create-recoverable" {
                                input type="checkbox" id="create-recoverable" name="recoverable" value="true"
                                    checked[form.has("recoverable")];
                                span { "Recoverable: keep an encrypted copy that members allowed to may reveal later (every reveal is audited)." }
                            }
                        }
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Create key" }
                }
            }
        },
    )
}

/// Turns the create form into the service's input; errors of the form's own fields aside.
fn parse_create(form: &FormData, apis: &[Api]) -> (CreateKey, FieldErrors) {
    let mut errors = FieldErrors::default();
    let api_id = form
        .non_empty("api_id")
        .or_else(|| default_api(apis).map(|a| a.id.clone()));
    let (token_type, scopes) = match &api_id {
        Some(id) => (
            form.non_empty(&format!("type:{id}")),
            form.all(&format!("scopes:{id}"))
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    let (expires, expires_at) = match form.text("expires") {
        "date" => match parse_date(form.text("expires_on")) {
            Some(t) => (None, OffsetDateTime::from_unix_timestamp(t / 1000).ok()),
            None => {
                errors.add("expires", "choose a date, or another expiry");
                (None, None)
            }
        },
        "" => (None, None),
        other => (Some(other.to_owned()), None),
    };
    let rate_limit = parse_rate_limit(form, &mut errors);
    let quota = parse_quota(form, &mut errors);
    let metadata = parse_metadata(form, &mut errors);
    let environment = match form.text("environment") {
        "test" => Some(Environment::Test),
        _ => Some(Environment::Live),
    };
    let input = CreateKey {
        name: form.text("name").to_owned(),
        api_id,
        description: form.non_empty("description"),
        token_type,
        scopes: Some(scopes),
        ip_allowlist: Some(split_list(form.text("ip_allowlist"))),
        expires,
        expires_at,
        environment,
        rate_limit,
        quota,
        metadata,
        owner_id: form.non_empty("owner_id"),
        recoverable: Some(form.has("recoverable")),
    };
    (input, errors)
}

async fn create(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let q = ListQuery::default();
    let mut data = match load_list(&state, &m, &q).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&m), e),
    };
    let (input, mut errors) = parse_create(&form, &data.apis);
    if errors.is_empty() {
        match keys::create(&state.ctx, &m.caller, input).await {
            Ok(created) => {
                data.keys.retain(|k| k.id != created.key.id);
                data.keys.insert(0, created.key.clone());
                let fresh = Fresh {
                    key: &created.key,
                    secret: &created.secret,
                    rotated: None,
                    return_to: "/keys".into(),
                };
                return page(
                    &m,
                    StatusCode::CREATED,
                    render_list(&m, &q, &data, None, Some(&fresh)),
                );
            }
            Err(ServiceError::Validation(e)) => errors = e.into(),
            Err(ServiceError::Conflict(d)) => errors.add("form", d),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    let state = CreateState {
        form: &form,
        errors,
    };
    page(
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        render_list(&m, &q, &data, Some(&state), None),
    )
}

/// The one-time display of a new key.
fn fresh_dialog(f: &Fresh<'_>, now: Millis) -> Markup {
    let title = if f.rotated.is_some() {
        "Key rotated"
    } else {
        "API key created"
    };
    dialog(
        "key-created",
        title,
        true,
        false,
        html! {
            div class="dialog-body" data-return=(f.return_to) {
                p {
                    "Your new key " strong { (f.key.name) } " is ready."
                    @if let Some(old) = f.rotated {
                        @match old.revoked_at {
                            Some(t) if t > now => { " The old key keeps working until " (layout::date_time(t)) "." }
                            _ => { " The old key has stopped working." }
                        }
                    }
                }
                div class="notice warning" role="alert" {
                    strong { "Copy it now. " }
                    "For your security, it will not be shown again: Keyward keeps only a hash of it."
                }
                label for="new-key" { "Your API key" }
                div class="copy-row" {
                    textarea id="new-key" class="mono secret" rows="2" readonly autocomplete="off"
                        spellcheck="false" data-secret aria-describedby="new-key-hint" { (f.secret.expose()) }
                    button type="button" class="btn primary" data-copy="new-key" { "Copy" }
                }
                p class="hint" role="status" data-copy-status {}
                p class="hint" id="new-key-hint" {
                    "Send it in the " code { "Authorization: Bearer <key>" } " header. Store it in a secrets manager or an environment variable, never in source code."
                }
            }
            div class="dialog-footer" {
                button type="button" class="btn" data-close { "I have saved it" }
            }
        },
    )
}

// -------------------------------------------------------------------- one key

#[derive(Debug, Default, Deserialize)]
struct DetailQuery {
    dialog: Option<String>,
}

/// What a key page needs besides the key.
struct DetailData {
    key: Key,
    api: Option<Api>,
    members: Vec<User>,
    events: Option<Vec<crate::domain::model::AuditEvent>>,
}

async fn load_detail(state: &AppState, m: &Member, id: &str) -> Result<DetailData, ServiceError> {
    let key = keys::get(&state.ctx, &m.caller, id).await?;
    let api = apis::get(&state.ctx, &m.caller, &key.api_id).await.ok();
    let members = members(state, m).await?;
    let events = if m.can("audit:read") {
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
    Ok(DetailData {
        key,
        api,
        members,
        events,
    })
}

/// Which dialog a key page opens, and with what refused input.
enum Open<'a> {
    None,
    Named(&'a str),
    Edit(&'a FormData, FieldErrors),
    Rotate(FieldErrors),
}

async fn detail_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Path(id): Path<String>,
    Query(q): Query<DetailQuery>,
) -> Response {
    match load_detail(&state, &m, &id).await {
        Ok(d) => {
            let open = q.dialog.as_deref().map_or(Open::None, Open::Named);
            page(&m, StatusCode::OK, render_detail(&m, &d, open, None))
        }
        Err(e) => error_page(Some(&m), e),
    }
}

fn render_detail(m: &Member, d: &DetailData, open: Open<'_>, fresh: Option<&Fresh<'_>>) -> Markup {
    let k = &d.key;
    let now = m.now;
    let editable = may_edit(m, k) && is_live(k, now);
    let revocable = may_delete(m, k) && is_live(k, now);
    let deletable = may_delete(m, k) && k.deleted_at.is_none();
    let revealable = may_reveal(m, k, now);
    let named = |n: &str| matches!(open, Open::Named(x) if x == n);
    let actions = html! {
        @if editable {
            button type="button" class="btn" data-open="edit-key" { "Edit" }
            button type="button" class="btn" data-open="rotate-key" { "Rotate" }
        }
        @if revocable { button type="button" class="btn danger-outline" data-open="revoke-key" { "Revoke" } }
        @if deletable { button type="button" class="btn danger" data-open="delete-key" { "Delete" } }
    };
    let content = html! {
        nav class="breadcrumb" aria-label="Breadcrumb" {
            a href="/keys" { "API keys" } span aria-hidden="true" { " / " } span aria-current="page" { (k.name) }
        }
        (page_header(&k.name, Some(html! {
            code class="prefix" { (masked(k)) } " " (status_badge(k, now))
        }), actions))
        div class="detail-grid" {
            section class="card" aria-labelledby="settings-title" {
                h2 id="settings-title" { "Settings" }
                dl class="props" {
                    dt { "Key" } dd {
                        code class="prefix" { (masked(k)) }
                        @if revealable {
                            " " button type="button" class="btn small ghost" data-open="reveal-key"
                                aria-label="Reveal the full key" title="Reveal the full key" { (eye()) " Reveal" }
                        }
                    }
                    dt { "ID" } dd { code { (k.id) } }
                    @if let Some(desc) = &k.description { dt { "Description" } dd { (desc) } }
                    dt { "API" } dd { (d.api.as_ref().map_or(k.api_id.as_str(), |a| a.name.as_str())) }
                    dt { "Type" } dd { (k.token_type) }
                    dt { "Environment" } dd { (k.environment.as_str()) }
                    dt { "Scopes" } dd { (scope_chips(&k.scopes)) }
                    dt { "IP allowlist" } dd {
                        @if k.ip_allowlist.is_empty() { span class="muted" { "Any IP" } }
                        @else { ul class="plain-list" { @for n in &k.ip_allowlist { li { code { (n) } } } } }
                    }
                    dt { "Expires" } dd { (expiry_cell(k, now)) }
                    dt { "Rate limit" } dd {
                        @match &k.rate_limit { Some(rl) => (rate_limit_text(rl)), None => span class="muted" { "None" } }
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
                section class="card usage" id="usage" aria-labelledby="usage-title" {
                    h2 id="usage-title" { "Usage" }
                    p class="muted" { "Requests over time will be charted here." }
                }
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
        @if editable {
            (edit_dialog(m, d, match &open { Open::Edit(f, e) => Some((*f, e)), _ => None }, named("edit")))
            (rotate_dialog(m, k, match &open { Open::Rotate(e) => Some(e), _ => None }, named("rotate")))
        }
        @if revocable { (revoke_dialog(m, k, named("revoke"))) }
        @if revealable { (reveal_dialog(k, named("reveal"))) }
        @if deletable { (delete_dialog(m, Some(k), named("delete"))) }
        @if let Some(f) = fresh { (fresh_dialog(f, now)) }
    };
    layout::shell(m, Nav::Keys, &k.name, content)
}

fn edit_dialog(
    m: &Member,
    d: &DetailData,
    state: Option<(&FormData, &FieldErrors)>,
    open: bool,
) -> Markup {
    let k = &d.key;
    let no_errors = FieldErrors::default();
    let current_allowlist = k
        .ip_allowlist
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let metadata = match state {
        Some((f, _)) => f.text("metadata").to_owned(),
        None => metadata_text(k),
    };
    let (name, description, allowlist, scopes, enabled, rate_req, rate_per, errors) = match state {
        Some((f, e)) => (
            f.text("name").to_owned(),
            f.text("description").to_owned(),
            f.text("ip_allowlist").to_owned(),
            f.all("scopes").into_iter().map(str::to_owned).collect(),
            f.has("enabled"),
            f.text("rate_requests").to_owned(),
            f.text("rate_per").to_owned(),
            e,
        ),
        None => (
            k.name.clone(),
            k.description.clone().unwrap_or_default(),
            current_allowlist,
            k.scopes.clone(),
            k.enabled,
            k.rate_limit
                .map(|r| r.requests.to_string())
                .unwrap_or_default(),
            k.rate_limit
                .map(|r| r.per_seconds.to_string())
                .unwrap_or_default(),
            &no_errors,
        ),
    };
    let shown = [
        "name",
        "description",
        "ip_allowlist",
        "scopes",
        "rate_limit",
        "metadata",
        "enabled",
    ];
    dialog(
        "edit-key",
        "Edit key",
        open || state.is_some(),
        true,
        html! {
            form method="post" action={ "/keys/" (k.id) "/edit" } class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&shown)))
                    (input("edit-name", "name", "Name", &name, errors, Input {
                        required: true, maxlength: Some(100), autofocus: true, ..Input::default() }))
                    (field("edit-description", "Description (optional)", None, errors, "description", html! {
                        textarea id="edit-description" name="description" rows="2" maxlength="500"
                            aria-describedby=(described_by("edit-description", false)) { (description) }
                    }))
                    (allowlist_field("edit-ip", &allowlist, errors))
                    @if m.org.policies.scopes_editable {
                        @if let Some(api) = &d.api {
                            (scope_checkboxes(m, "edit-scopes", "scopes", api, &scopes, errors))
                        }
                    } @else {
                        div class="field" {
                            span class="label" { "Scopes" }
                            (scope_chips(&k.scopes))
                            p class="hint" { "Your organization's policy does not allow changing scopes after creation: rotate into a new key instead." }
                        }
                    }
                    (rate_limit_fields("edit-rate", &rate_req, &rate_per, errors))
                    (metadata_field("edit-metadata", &metadata, errors))
                    label class="checkbox" for="edit-enabled" {
                        input type="checkbox" id="edit-enabled" name="enabled" value="true" checked[enabled];
                        span { "Enabled" span class="muted" { " — a disabled key is refused until enabled again" } }
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Save changes" }
                }
            }
        },
    )
}

fn rotate_dialog(m: &Member, k: &Key, errors: Option<&FieldErrors>, open: bool) -> Markup {
    let no_errors = FieldErrors::default();
    let errors = errors.unwrap_or(&no_errors);
    dialog(
        "rotate-key",
        "Rotate key",
        open || !errors.is_empty(),
        false,
        html! {
            form method="post" action={ "/keys/" (k.id) "/rotate" } class="dialog-form" {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["grace_period_s"])))
                    p {
                        "Rotating " strong { (k.name) } " (" code { (masked(k)) } ") creates a new key with the same settings and shows it once. "
                        "Choose how long the old key keeps working, so that you can deploy the new one first."
                    }
                    (field("rotate-grace", "Old key keeps working for", None, errors, "grace_period_s", html! {
                        select id="rotate-grace" name="grace_period_s" aria-describedby=(described_by("rotate-grace", false)) {
                            @for (s, label) in GRACE_CHOICES {
                                option value=(s) selected[*s == 86_400] { (label) }
                            }
                        }
                    }))
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Rotate key" }
                }
            }
        },
    )
}

fn revoke_dialog(m: &Member, k: &Key, open: bool) -> Markup {
    dialog(
        "revoke-key",
        "Revoke key",
        open,
        false,
        html! {
            form method="post" action={ "/keys/" (k.id) "/revoke" } class="dialog-form" {
                div class="dialog-body" {
                    (csrf_field(m))
                    p {
                        "Revoke " strong { (k.name) } " (" code { (masked(k)) } ")? Every request that uses it is refused "
                        "at once. It stays in the list as revoked."
                    }
                    (input("revoke-reason", "reason", "Reason (optional)", "", &FieldErrors::default(), Input {
                        maxlength: Some(500), placeholder: Some("e.g. left the team"),
                        hint: Some("Kept in the audit log."), ..Input::default() }))
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn danger" { "Revoke key" }
                }
            }
        },
    )
}

/// An eye icon.
fn eye() -> Markup {
    html! {
        svg class="icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false" {
            path d="M12 5C6.5 5 2.7 9.2 1.5 12c1.2 2.8 5 7 10.5 7s9.3-4.2 10.5-7C21.3 9.2 17.5 5 12 5Zm0 11.5a4.5 4.5 0 1 1 0-9 4.5 4.5 0 0 1 0 9Zm0-2.2a2.3 2.3 0 1 0 0-4.6 2.3 2.3 0 0 0 0 4.6Z" fill="currentColor" {}
        }
    }
}

/// Reveals a recoverable key through the API (`GET /v1/keys/{id}/secret`, audited).
fn reveal_dialog(k: &Key, open: bool) -> Markup {
    dialog(
        "reveal-key",
        "Reveal key",
        open,
        false,
        html! {
            div class="dialog-body" data-return={ "/keys/" (k.id) } data-reusable {
                p {
                    strong { (k.name) } " is recoverable: Keyward keeps it encrypted. Revealing it is "
                    "recorded in the audit log with your name."
                }
                div class="copy-row" hidden {
                    textarea id="revealed-key" class="mono secret" rows="2" readonly autocomplete="off"
                        spellcheck="false" data-secret aria-label="The full key" {}
                    button type="button" class="btn" data-copy="revealed-key" { "Copy" }
                }
                p class="hint" role="status" id="revealed-key-status" data-copy-status {}
            }
            div class="dialog-footer" {
                button type="button" class="btn" data-close { "Close" }
                button type="button" class="btn primary" data-reveal={ "/v1/keys/" (k.id) "/secret" }
                    data-reveal-target="revealed-key" { "Reveal key" }
            }
        },
    )
}

/// The delete confirmation. Without a key, the list fills it from the button that opens it.
fn delete_dialog(m: &Member, k: Option<&Key>, open: bool) -> Markup {
    let name = k.map(|k| k.name.clone()).unwrap_or_default();
    let prefix = k.map(masked).unwrap_or_default();
    let action = k
        .map(|k| format!("/keys/{}/delete", k.id))
        .unwrap_or_default();
    dialog(
        "delete-key",
        "Delete key",
        open,
        false,
        html! {
            form method="post" action=(action) class="dialog-form" data-fill-target="action" {
                div class="dialog-body" {
                    (csrf_field(m))
                    p {
                        "Delete " strong data-fill="name" { (name) } " (" code data-fill="prefix" { (prefix) } ")?"
                    }
                    p {
                        "It stops working immediately and disappears from the list. The audit log keeps its "
                        "history. This cannot be undone."
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close autofocus { "Cancel" }
                    button type="submit" class="btn danger" { "Delete key" }
                }
            }
        },
    )
}

/// Only the fields that changed, so that the audit log names exactly those.
fn parse_edit(form: &FormData, k: &Key, scopes_editable: bool) -> (UpdateKey, FieldErrors) {
    let mut errors = FieldErrors::default();
    let mut patch = UpdateKey::default();
    let name = form.text("name");
    if name != k.name {
        patch.name = Some(name.to_owned());
    }
    let description = form.non_empty("description");
    if description != k.description {
        patch.description = Some(description);
    }
    let allowlist = split_list(form.text("ip_allowlist"));
    let current: Vec<String> = k.ip_allowlist.iter().map(|n| n.to_string()).collect();
    if allowlist != current {
        patch.ip_allowlist = Some(allowlist);
    }
    if scopes_editable {
        let scopes: Vec<String> = form.all("scopes").into_iter().map(str::to_owned).collect();
        if scopes != k.scopes {
            patch.scopes = Some(scopes);
        }
    }
    let enabled = form.has("enabled");
    if enabled != k.enabled {
        patch.enabled = Some(enabled);
    }
    let rate_limit = parse_rate_limit(form, &mut errors);
    if rate_limit != k.rate_limit {
        patch.rate_limit = Some(rate_limit);
    }
    // An empty field clears the metadata.
    let metadata = parse_metadata(form, &mut errors);
    if errors.of("metadata").is_none() {
        let metadata = metadata.unwrap_or_default();
        if metadata != k.metadata {
            patch.metadata = Some(metadata);
        }
    }
    (patch, errors)
}

async fn edit(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let d = match load_detail(&state, &m, &id).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&m), e),
    };
    let (patch, mut errors) = parse_edit(&form, &d.key, m.org.policies.scopes_editable);
    if errors.is_empty() {
        match keys::update(&state.ctx, &m.caller, &id, patch).await {
            Ok(k) => {
                return redirect_with_notice(
                    &m,
                    &format!("/keys/{}", k.id),
                    &format!("Saved the changes to {}.", k.name),
                );
            }
            Err(ServiceError::Validation(e)) => errors = e.into(),
            Err(ServiceError::Conflict(d)) => errors.add("form", d),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    page(
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        render_detail(&m, &d, Open::Edit(&form, errors), None),
    )
}

async fn rotate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let grace = form.text("grace_period_s").parse::<i64>().unwrap_or(0);
    let input = RotateKey {
        grace_period_s: Some(grace),
    };
    match keys::rotate(&state.ctx, &m.caller, &id, input).await {
        Ok((new, secret)) => {
            let (old, d) = match (
                keys::get(&state.ctx, &m.caller, &id).await,
                load_detail(&state, &m, &new.id).await,
            ) {
                (Ok(old), Ok(d)) => (old, d),
                (Err(e), _) | (_, Err(e)) => return error_page(Some(&m), e),
            };
            let fresh = Fresh {
                key: &new,
                secret: &secret,
                rotated: Some(&old),
                return_to: format!("/keys/{}", new.id),
            };
            page(
                &m,
                StatusCode::CREATED,
                render_detail(&m, &d, Open::None, Some(&fresh)),
            )
        }
        Err(ServiceError::Validation(e)) => match load_detail(&state, &m, &id).await {
            Ok(d) => page(
                &m,
                StatusCode::UNPROCESSABLE_ENTITY,
                render_detail(&m, &d, Open::Rotate(e.into()), None),
            ),
            Err(e) => error_page(Some(&m), e),
        },
        Err(e) => error_page(Some(&m), e),
    }
}

async fn revoke(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let input = RevokeKey {
        reason: form.non_empty("reason"),
    };
    match keys::revoke(&state.ctx, &m.caller, &id, input).await {
        Ok(k) => redirect_with_notice(
            &m,
            &format!("/keys/{}", k.id),
            &format!("Revoked {} ({}).", k.name, masked(&k)),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    let key = match keys::get(&state.ctx, &m.caller, &id).await {
        Ok(k) => k,
        Err(e) => return error_page(Some(&m), e),
    };
    match keys::delete(&state.ctx, &m.caller, &id).await {
        Ok(()) => redirect_with_notice(
            &m,
            "/keys",
            &format!("Deleted {} ({}).", key.name, masked(&key)),
        ),
        Err(e) => error_page(Some(&m), e),
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
    fn date_inputs_mean_midnight_utc() {
        let t = parse_date("2030-01-02").unwrap();
        assert_eq!(date_value(t), "2030-01-02");
        assert_eq!(t % 86_400_000, 0);
        assert_eq!(parse_date("02/01/2030"), None);
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
    }
}
