//! The create dialog, its parsing, and the one-time display of a new key.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use time::OffsetDateTime;
use time::macros::format_description;

use super::fields::{
    acl_checkboxes, allowlist_field, group_checkboxes, metadata_field, parse_metadata,
    parse_rate_limit, rate_limit_fields, resources_field, scope_checkboxes, split_list,
};
use super::list::{ListData, ListParams, load_list, render_list};
use crate::dashboard::layout::{
    self, Input, csrf_field, described_by, dialog, field, form_errors, input,
};
use crate::dashboard::scopes::type_description;
use crate::dashboard::{FieldErrors, FormData, Member, Submitted, error_page, page};
use crate::domain::key::SecretKey;
use crate::domain::model::{
    Api, Environment, ExpiryChoice, IpAcl, Key, KeyGroup, Millis, Org, Refill, RefillInterval, User,
};
use crate::http::AppState;
use crate::service::keys::{self, CreateKey, QuotaInput};
use crate::service::{ServiceError, authz, sessions};

/// The state of the create dialog after a refused submission.
pub(super) struct CreateState<'a> {
    form: &'a FormData,
    errors: FieldErrors,
}

/// A key just created or rotated, shown once.
pub(super) struct Fresh<'a> {
    pub(super) key: &'a Key,
    pub(super) secret: &'a SecretKey,
    pub(super) rotated: Option<&'a Key>,
    /// Where the browser's address goes once the dialog closes.
    pub(super) return_to: String,
}

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
pub(in crate::dashboard) fn expiry_label(c: ExpiryChoice) -> &'static str {
    match c {
        ExpiryChoice::OneYear => "1 year",
        ExpiryChoice::TwoYears => "2 years",
        ExpiryChoice::FiveYears => "5 years",
        ExpiryChoice::Never => "Never",
    }
}

pub(super) fn create_dialog(
    m: &Member,
    apis: &[Api],
    members: &[User],
    acls: &[IpAcl],
    groups: &[KeyGroup],
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
    let recoverable = authz::recoverable_keys(&org.policies, m.can_encrypt).is_ok();
    let recoverable_error = errors.of("recoverable");
    let mut shown = vec![
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
        "ip_acl_ids",
        "group_ids",
        "resources",
    ];
    // Not offered, its error goes to the top of the form.
    if recoverable {
        shown.push("recoverable");
    }
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
                            @if !a.is_management() {
                                fieldset class="plain" disabled[!current] {
                                    @let api_groups: Vec<&KeyGroup> = groups.iter().filter(|g| g.api_id == a.id).collect();
                                    @let chosen: Vec<String> = form.all(&format!("group_ids:{}", a.id)).into_iter().map(str::to_owned).collect();
                                    (group_checkboxes(&format!("create-groups-{}", a.id), &format!("group_ids:{}", a.id), &api_groups, &chosen, errors))
                                }
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
                                value=(form.text("expires_on")) aria-describedby="create-expires-error"
                                data-range-message="Choose a date after today.";
                        }
                        @if !org.policies.allowed_expiries.contains(&ExpiryChoice::Never) {
                            p class="hint" { "Your organization's policy requires keys to expire." }
                        }
                        p class="field-error" id="create-expires-error" role="alert" hidden[expires_error.is_none()] {
                            @if let Some(e) = &expires_error { (e) }
                        }
                    }
                    (allowlist_field("create-ip", form.text("ip_allowlist"), errors))
                    @let chosen_acls: Vec<String> = form.all("ip_acl_ids").into_iter().map(str::to_owned).collect();
                    (acl_checkboxes("create-acls", acls, &chosen_acls, errors))
                    (resources_field("create-resources", form.text("resources"), errors))
                    (rate_limit_fields("create-rate", form.text("rate_requests"), form.text("rate_per"), errors))
                    (quota_fields("create-quota", form, errors))
                    details class="more-options" open[owner != m.caller.user.id || errors.of("owner_id").is_some() || errors.of("environment").is_some() || errors.of("metadata").is_some() || recoverable_error.is_some()] {
                        summary { "More options" }
                        (metadata_field("create-metadata", form.text("metadata"), errors))
                        (field("create-env", "Environment", Some("Test keys carry the API's test prefix."), errors, "environment", html! {
                            select id="create-env" name="environment" aria-describedby=(described_by("create-env", true)) {
                                option value="live" selected[form.text("environment") != "test"] { "Live" }
                                option value="test" selected[form.text("environment") == "test"] { "Test" }
                            }
                        }))
                        @if m.actions.create_keys_for_others && members.len() > 1 {
                            (field("create-owner", "Owner", Some("The member the key belongs to. It stops working if a person owning it leaves; a service account's keys survive any person leaving."), errors, "owner_id", html! {
                                select id="create-owner" name="owner_id" aria-describedby=(described_by("create-owner", true)) {
                                    @for u in members.iter().filter(|u| authz::may_own_keys(u)) {
                                        option value=(u.id) selected[owner == u.id] {
                                            (u.label()) @if u.is_service() { " (service account)" }
                                        }
                                    }
                                }
                            }))
                        }
                        @if recoverable {
                            div class={ "field" @if recoverable_error.is_some() { " has-error" } } {
                                label class="checkbox" for="create-recoverable" {
                                    input type="checkbox" id="create-recoverable" name="recoverable" value="true"
                                        aria-describedby="create-recoverable-error" checked[form.has("recoverable")];
                                    span { "Recoverable: keep an encrypted copy that members allowed to may reveal later (every reveal is audited)." }
                                }
                                p class="field-error" id="create-recoverable-error" role="alert" hidden[recoverable_error.is_none()] {
                                    @if let Some(e) = &recoverable_error { (e) }
                                }
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

/// Turns the create form into the service's input; errors of the form's own fields aside.
fn parse_create(form: &FormData, apis: &[Api]) -> (CreateKey, FieldErrors) {
    let mut errors = FieldErrors::default();
    let api_id = form
        .non_empty("api_id")
        .or_else(|| default_api(apis).map(|a| a.id.clone()));
    let (token_type, scopes, group_ids) = match &api_id {
        Some(id) => (
            form.non_empty(&format!("type:{id}")),
            form.all(&format!("scopes:{id}"))
                .into_iter()
                .map(str::to_owned)
                .collect(),
            form.all(&format!("group_ids:{id}"))
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        None => (None, Vec::new(), Vec::new()),
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
        ip_acl_ids: Some(
            form.all("ip_acl_ids")
                .into_iter()
                .map(str::to_owned)
                .collect(),
        ),
        group_ids: Some(group_ids),
        resources: Some(split_list(form.text("resources"))),
    };
    (input, errors)
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let data = match load_list(&state, &m, ListParams::default()).await {
        Ok(d) => d,
        Err(e) => return error_page(Some(&m), e),
    };
    let (input, mut errors) = parse_create(&form, &data.apis);
    if errors.is_empty() {
        match keys::create(&state.ctx, &m.caller, input).await {
            Ok(created) => return show_once(&state, &m, &created.key, &created.secret, data).await,
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
        render_list(&m, &data, Some(&state), None, None),
    )
}

/// Sends the browser to the list, which shows the new key's secret once: the answer to the form
/// is a redirect, so that reloading the page shows the list again and creates nothing. Should
/// the secret not be held (the session ended meanwhile), this answer shows it instead, since it
/// cannot be had again.
async fn show_once(
    state: &AppState,
    m: &Member,
    key: &Key,
    secret: &SecretKey,
    mut data: ListData,
) -> Response {
    match sessions::hold_secret(&state.ctx, &m.session, &key.id, secret).await {
        Ok(()) => Redirect::to(&format!("/keys?new={}", key.id)).into_response(),
        Err(e) => {
            tracing::warn!(key = %key.id, error = %e, "dashboard: showing a new key without a redirect");
            data.keys.retain(|k| k.id != key.id);
            data.keys.insert(0, key.clone());
            let fresh = Fresh {
                key,
                secret,
                rotated: None,
                return_to: "/keys".into(),
            };
            page(
                m,
                StatusCode::CREATED,
                render_list(m, &data, None, Some(&fresh), None),
            )
        }
    }
}

/// The one-time display of a new key.
pub(super) fn fresh_dialog(f: &Fresh<'_>, now: Millis) -> Markup {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_inputs_mean_midnight_utc() {
        let t = parse_date("2030-01-02").unwrap();
        assert_eq!(date_value(t), "2030-01-02");
        assert_eq!(t % 86_400_000, 0);
        assert_eq!(parse_date("02/01/2030"), None);
    }
}
