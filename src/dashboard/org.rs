//! Organization: plan status (plan, API access, billing) and the key policies.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};

use super::keys::expiry_label;
use super::layout::{
    self, Input, Nav, badge, csrf_field, described_by, dialog, field, form_errors, input,
    page_header, time_date,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::domain::model::{ExpiryChoice, Org};
use crate::http::AppState;
use crate::service::org::{self, PoliciesPatch, UpdateOrg};
use crate::service::{ServiceError, authz};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/org", get(org_page).post(update))
}

fn yes_no(v: bool) -> Markup {
    if v {
        badge("success", "Yes")
    } else {
        badge("neutral", "No")
    }
}

async fn org_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    match org::get(&state.ctx, &m.caller).await {
        Ok(o) => page(&m, StatusCode::OK, render(&state, &m, &o, None)),
        Err(e) => error_page(Some(&m), e),
    }
}

fn render(
    state: &AppState,
    m: &Member,
    o: &Org,
    edit: Option<(&FormData, &FieldErrors)>,
) -> Markup {
    let without = state.ctx.verifier.plans_without_access();
    let access = o.has_api_access(without);
    let plan_blocked = without.iter().any(|p| p == &o.plan);
    let p = &o.policies;
    let content = html! {
        (page_header("Organization", Some(html! { "Plan status and the rules every key of " strong { (o.name) } " follows." }), html! {
            @if m.actions.update_org { button type="button" class="btn primary" data-open="edit-org" { "Edit settings" } }
        }))
        @if access {
            div class="notice success" role="status" { "Keys of this organization can call your protected APIs." }
        } @else {
            div class="notice error" role="status" {
                strong { "Keys of this organization are refused with plan_inactive. " }
                @if !o.api_access { "API access is switched off. " }
                @if o.billing_status == "past_due" { "Billing is past due. " }
                @if plan_blocked { "The " (o.plan) " plan has no API access. " }
                "Management keys and this dashboard keep working."
            }
        }
        div class="two-col" {
            section class="card" aria-labelledby="org-title" {
                h2 id="org-title" { "Plan status" }
                dl class="props" {
                    dt { "Name" } dd { (o.name) }
                    dt { "ID" } dd { code { (o.id) } }
                    dt { "Plan" } dd { (o.plan) @if plan_blocked { " " (badge("warning", "no API access")) } }
                    dt { "API access" } dd { @if o.api_access { (badge("success", "On")) } @else { (badge("danger", "Off")) } }
                    dt { "Billing" } dd { @if o.billing_status == "past_due" { (badge("danger", "Past due")) } @else { (badge("success", "Active")) } }
                    dt { "Created" } dd { (time_date(o.created_at)) }
                }
            }
            section class="card" aria-labelledby="policies-title" {
                h2 id="policies-title" { "Key policies" }
                dl class="props" {
                    dt { "Key limit" } dd { (p.key_limit) " keys (not revoked, not deleted)" }
                    dt { "Allowed expiries" } dd {
                        ul class="chips" { @for c in &p.allowed_expiries { li class="chip" { (expiry_label(*c)) } } }
                    }
                    dt { "Scopes editable after creation" } dd { (yes_no(p.scopes_editable)) }
                    dt { "One active key per member per API" } dd { (yes_no(p.single_active_key)) }
                    dt { "Recoverable keys" } dd {
                        (yes_no(p.recoverable_keys))
                        @if p.recoverable_keys && !m.can_encrypt {
                            div class="muted small" { "Not available: the server has no KEYWARD_ENCRYPTION_KEY, so new keys cannot be recoverable." }
                        }
                    }
                }
            }
        }
        @if m.actions.update_org { (edit_dialog(state, m, o, edit)) }
    };
    layout::shell(m, Nav::Org, "Organization", content)
}

fn edit_dialog(
    state: &AppState,
    m: &Member,
    o: &Org,
    edit: Option<(&FormData, &FieldErrors)>,
) -> Markup {
    let none = FieldErrors::default();
    let errors = edit.map_or(&none, |(_, e)| e);
    let form = edit.map(|(f, _)| f);
    let text = |name: &str, current: String| -> String {
        form.map_or(current, |f| f.text(name).to_owned())
    };
    let checked = |name: &str, current: bool| form.map_or(current, |f| f.has(name));
    let plan = text("plan", o.plan.clone());
    let billing = text("billing_status", o.billing_status.clone());
    let expiries: Vec<String> = match form {
        Some(f) => f
            .all("allowed_expiries")
            .into_iter()
            .map(str::to_owned)
            .collect(),
        None => o
            .policies
            .allowed_expiries
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
    };
    let shown = [
        "name",
        "plan",
        "billing_status",
        "policies.key_limit",
        "policies.allowed_expiries",
        "policies.recoverable_keys",
    ];
    dialog(
        "edit-org",
        "Organization settings",
        edit.is_some(),
        true,
        html! {
            form method="post" action="/org" class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&shown)))
                    (input("org-name", "name", "Name", &text("name", o.name.clone()), errors, Input {
                        required: true, maxlength: Some(100), ..Input::default() }))
                    (field("org-plan", "Plan", None, errors, "plan", html! {
                        select id="org-plan" name="plan" aria-describedby=(described_by("org-plan", false)) {
                            @for p in state.ctx.plans.iter() {
                                option value=(p.name) selected[plan == p.name] {
                                    (p.name) @if !p.api_access { " (no API access)" }
                                }
                            }
                        }
                    }))
                    (field("org-billing", "Billing status", None, errors, "billing_status", html! {
                        select id="org-billing" name="billing_status" aria-describedby=(described_by("org-billing", false)) {
                            option value="active" selected[billing == "active"] { "Active" }
                            option value="past_due" selected[billing == "past_due"] { "Past due (keys refused)" }
                        }
                    }))
                    label class="checkbox" for="org-access" {
                        input type="checkbox" id="org-access" name="api_access" value="true" checked[checked("api_access", o.api_access)];
                        span { "API access" span class="muted" { " — off refuses every key of this organization with plan_inactive" } }
                    }
                    h3 { "Key policies" }
                    (input("org-limit", "policies.key_limit", "Key limit", &text("policies.key_limit", o.policies.key_limit.to_string()), errors, Input {
                        kind: "number", required: true, hint: Some("Most keys the organization may hold at once, 1 to 1,000,000."),
                        ..Input::default() }))
                    @let exp_error = errors.of("policies.allowed_expiries");
                    fieldset class={ "field" @if exp_error.is_some() { " has-error" } } {
                        legend { "Allowed expiries" }
                        div class="segmented-checks" {
                            @for c in ExpiryChoice::ALL {
                                label class="checkbox" for={ "org-exp-" (c.as_str()) } {
                                    input type="checkbox" id={ "org-exp-" (c.as_str()) } name="allowed_expiries" value=(c.as_str())
                                        checked[expiries.iter().any(|e| e == c.as_str())];
                                    span { (expiry_label(c)) }
                                }
                            }
                        }
                        p class="field-error" role="alert" hidden[exp_error.is_none()] { @if let Some(e) = &exp_error { (e) } }
                    }
                    label class="checkbox" for="org-scopes" {
                        input type="checkbox" id="org-scopes" name="scopes_editable" value="true" checked[checked("scopes_editable", o.policies.scopes_editable)];
                        span { "Scopes can be edited after creation" }
                    }
                    label class="checkbox" for="org-single" {
                        input type="checkbox" id="org-single" name="single_active_key" value="true" checked[checked("single_active_key", o.policies.single_active_key)];
                        span { "One active key per member per API" span class="muted" { " — creating a key revokes the member's other keys of that API" } }
                    }
                    @let rec_error = errors.of("policies.recoverable_keys");
                    @let rec_on = checked("recoverable_keys", o.policies.recoverable_keys);
                    @let rec_unavailable = authz::recoverable_policy(m.can_encrypt).err();
                    div class={ "field" @if rec_error.is_some() { " has-error" } } {
                        label class="checkbox" for="org-recoverable" {
                            // Without an encryption key the policy may still be switched off.
                            input type="checkbox" id="org-recoverable" name="recoverable_keys" value="true"
                                aria-describedby="org-recoverable-hint org-recoverable-error"
                                checked[rec_on] disabled[rec_unavailable.is_some() && !o.policies.recoverable_keys];
                            span { "Recoverable keys" span class="muted" { " — an encrypted copy that members with keys:reveal can reveal" } }
                        }
                        @if let Some(why) = rec_unavailable {
                            p class="hint" id="org-recoverable-hint" { "Not available on this server: " (why) "." }
                        }
                        p class="field-error" id="org-recoverable-error" role="alert" hidden[rec_error.is_none()] { @if let Some(e) = &rec_error { (e) } }
                    }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Save settings" }
                }
            }
        },
    )
}

/// Only what changed, so that the audit log names exactly that.
fn parse(form: &FormData, o: &Org) -> (UpdateOrg, FieldErrors) {
    let mut errors = FieldErrors::default();
    let mut patch = UpdateOrg::default();
    let mut pol = PoliciesPatch::default();
    let name = form.text("name");
    if name != o.name {
        patch.name = Some(name.to_owned());
    }
    let plan = form.text("plan");
    if plan != o.plan {
        patch.plan = Some(plan.to_owned());
    }
    let billing = form.text("billing_status");
    if billing != o.billing_status {
        patch.billing_status = Some(billing.to_owned());
    }
    let access = form.has("api_access");
    if access != o.api_access {
        patch.api_access = Some(access);
    }
    if form.has("policies.key_limit") {
        match form.text("policies.key_limit").parse::<u32>() {
            Ok(n) if n != o.policies.key_limit => pol.key_limit = Some(n),
            Ok(_) => {}
            Err(_) => errors.add("policies.key_limit", "must be a whole number"),
        }
    }
    let expiries: Vec<ExpiryChoice> = ExpiryChoice::ALL
        .into_iter()
        .filter(|c| form.all("allowed_expiries").contains(&c.as_str()))
        .collect();
    if expiries != o.policies.allowed_expiries {
        pol.allowed_expiries = Some(expiries);
    }
    let flag = |name: &str, current: bool| (form.has(name) != current).then(|| form.has(name));
    pol.scopes_editable = flag("scopes_editable", o.policies.scopes_editable);
    pol.single_active_key = flag("single_active_key", o.policies.single_active_key);
    pol.recoverable_keys = flag("recoverable_keys", o.policies.recoverable_keys);
    if pol.key_limit.is_some()
        || pol.allowed_expiries.is_some()
        || pol.scopes_editable.is_some()
        || pol.single_active_key.is_some()
        || pol.recoverable_keys.is_some()
    {
        patch.policies = Some(pol);
    }
    (patch, errors)
}

async fn update(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let current = match org::get(&state.ctx, &m.caller).await {
        Ok(o) => o,
        Err(e) => return error_page(Some(&m), e),
    };
    let (patch, mut errors) = parse(&form, &current);
    if errors.is_empty() {
        match org::update(&state.ctx, &m.caller, patch).await {
            Ok(_) => return redirect_with_notice(&m, "/org", "Saved the organization's settings."),
            Err(ServiceError::Validation(e)) => errors = e.into(),
            Err(e) => return error_page(Some(&m), e),
        }
    }
    page(
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        render(&state, &m, &current, Some((&form, &errors))),
    )
}
