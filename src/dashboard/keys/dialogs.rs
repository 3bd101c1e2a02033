//! A key's edit, rotate, revoke, reveal and delete dialogs, and the forms they post.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::create::Fresh;
use super::detail::{DetailData, Open, load_detail, render_detail};
use super::fields::{
    acl_checkboxes, allowlist_field, group_checkboxes, metadata_field, parse_metadata,
    parse_rate_limit, rate_limit_fields, resources_field, scope_checkboxes, split_list,
};
use super::{masked, scope_chips};
use crate::dashboard::layout::{
    Input, csrf_field, described_by, dialog, field, form_errors, input,
};
use crate::dashboard::{
    FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice,
};
use crate::domain::key::SecretKey;
use crate::domain::model::Key;
use crate::http::AppState;
use crate::service::keys::{self, RevokeKey, RotateKey, UpdateKey};
use crate::service::{ServiceError, sessions};

/// Grace periods offered when rotating, in seconds.
const GRACE_CHOICES: &[(i64, &str)] = &[
    (0, "None: the old key stops working now"),
    (3600, "1 hour"),
    (86_400, "24 hours"),
    (7 * 86_400, "7 days"),
    (keys::GRACE_MAX_S, "14 days"),
];

pub(super) fn edit_dialog(
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
    let (acl_ids, group_ids, resources) = match state {
        Some((f, _)) => (
            f.all("ip_acl_ids").into_iter().map(str::to_owned).collect(),
            f.all("group_ids").into_iter().map(str::to_owned).collect(),
            f.text("resources").to_owned(),
        ),
        None => (
            k.ip_acl_ids.clone(),
            k.group_ids.clone(),
            k.resources.join("\n"),
        ),
    };
    let api_groups: Vec<&crate::domain::model::KeyGroup> =
        d.groups.iter().filter(|g| g.api_id == k.api_id).collect();
    let management = d.api.as_ref().is_some_and(|a| a.is_management());
    let shown = [
        "name",
        "description",
        "ip_allowlist",
        "scopes",
        "rate_limit",
        "metadata",
        "enabled",
        "ip_acl_ids",
        "group_ids",
        "resources",
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
                    (acl_checkboxes("edit-acls", &d.acls, &acl_ids, errors))
                    @if !management {
                        (group_checkboxes("edit-groups", "group_ids", &api_groups, &group_ids, errors))
                    }
                    (resources_field("edit-resources", &resources, errors))
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

/// A key's metadata as the edit form shows it: pretty JSON, or nothing when there is none.
fn metadata_text(k: &Key) -> String {
    if k.metadata.is_empty() {
        String::new()
    } else {
        serde_json::to_string_pretty(&k.metadata).unwrap_or_default()
    }
}

pub(super) fn rotate_dialog(
    m: &Member,
    k: &Key,
    errors: Option<&FieldErrors>,
    open: bool,
) -> Markup {
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

pub(super) fn revoke_dialog(m: &Member, k: &Key, open: bool) -> Markup {
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

/// Reveals a recoverable key through the API (`GET /v1/keys/{id}/secret`, audited).
pub(super) fn reveal_dialog(k: &Key, open: bool) -> Markup {
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
pub(super) fn delete_dialog(m: &Member, k: Option<&Key>, open: bool) -> Markup {
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
    let acl_ids: Vec<String> = form
        .all("ip_acl_ids")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if acl_ids != k.ip_acl_ids {
        patch.ip_acl_ids = Some(acl_ids);
    }
    let group_ids: Vec<String> = form
        .all("group_ids")
        .into_iter()
        .map(str::to_owned)
        .collect();
    if group_ids != k.group_ids {
        patch.group_ids = Some(group_ids);
    }
    let resources = split_list(form.text("resources"));
    if resources != k.resources {
        patch.resources = Some(resources);
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

pub(super) async fn edit(
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
            Err(ServiceError::Conflict(why)) => return refused(&state, &m, &id, why).await,
            Err(e) => return error_page(Some(&m), e),
        }
    }
    page(
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        render_detail(&m, &d, Open::Edit(&form, errors), None),
    )
}

pub(super) async fn rotate(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let grace = form.text("grace_period_s").parse::<i64>().unwrap_or(0);
    let input = RotateKey {
        grace_period_s: Some(grace),
    };
    let refused = match keys::rotate(&state.ctx, &m.caller, &id, input).await {
        // The answer is a redirect to the new key's page, which shows its secret once: reloading
        // that page rotates nothing.
        Ok((new, secret)) => {
            return match sessions::hold_secret(&state.ctx, &m.session, &new.id, &secret).await {
                Ok(()) => Redirect::to(&format!("/keys/{}?new=1", new.id)).into_response(),
                Err(e) => {
                    tracing::warn!(key = %new.id, error = %e, "dashboard: showing a rotated key without a redirect");
                    show_rotated(&state, &m, &id, &new, &secret).await
                }
            };
        }
        Err(ServiceError::Validation(e)) => Open::Rotate(e.into()),
        Err(ServiceError::Conflict(why)) => Open::Refused(why),
        Err(e) => return error_page(Some(&m), e),
    };
    match load_detail(&state, &m, &id).await {
        Ok(d) => {
            let status = match refused {
                Open::Refused(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            page(&m, status, render_detail(&m, &d, refused, None))
        }
        Err(e) => error_page(Some(&m), e),
    }
}

/// The new key's page with its secret, in the answer to the form itself: only when the secret
/// could not be held for the page a redirect leads to.
async fn show_rotated(
    state: &AppState,
    m: &Member,
    old_id: &str,
    new: &Key,
    secret: &SecretKey,
) -> Response {
    let (old, d) = match (
        keys::get(&state.ctx, &m.caller, old_id).await,
        load_detail(state, m, &new.id).await,
    ) {
        (Ok(old), Ok(d)) => (old, d),
        (Err(e), _) | (_, Err(e)) => return error_page(Some(m), e),
    };
    let fresh = Fresh {
        key: new,
        secret,
        rotated: Some(&old),
        return_to: format!("/keys/{}", new.id),
    };
    page(
        m,
        StatusCode::CREATED,
        render_detail(m, &d, Open::None, Some(&fresh)),
    )
}

pub(super) async fn revoke(
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
        Err(ServiceError::Conflict(why)) => refused(&state, &m, &id, why).await,
        Err(e) => error_page(Some(&m), e),
    }
}

pub(super) async fn delete(
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
        Err(ServiceError::Conflict(why)) => refused(&state, &m, &id, why).await,
        Err(e) => error_page(Some(&m), e),
    }
}

/// The key's page, saying why its state refused an action (409) and what to do instead.
async fn refused(state: &AppState, m: &Member, id: &str, why: String) -> Response {
    match load_detail(state, m, id).await {
        Ok(d) => page(
            m,
            StatusCode::CONFLICT,
            render_detail(m, &d, Open::Refused(why), None),
        ),
        Err(e) => error_page(Some(m), e),
    }
}
