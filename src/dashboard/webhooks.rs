//! Webhooks (administrators): the organization's endpoints, a new endpoint's signing secret shown
//! once after a redirect, editing, pausing and deleting an endpoint, and its delivery log with
//! redelivery. Every action goes through `service::webhooks`, which refuses other roles.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{
    self, Input, Nav, badge, csrf_field, date_time, dialog, form_errors, input, page_header,
    time_date,
};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::http::AppState;
use crate::service::webhooks::{self as service, CreateWebhook, Delivery, UpdateWebhook};
use crate::service::{ServiceError, sessions};
use crate::webhooks::EVENTS;
use crate::webhooks::model::{MessageStatus, Webhook};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/webhooks", get(list_page).post(create))
        .route("/webhooks/{id}", get(detail_page).post(update))
        .route("/webhooks/{id}/delete", post(delete))
        .route(
            "/webhooks/{id}/deliveries/{msg_id}/redeliver",
            post(redeliver),
        )
}

/// What each event means, for the checkboxes.
fn event_hint(event: &str) -> &'static str {
    match event {
        "key.created" => "a key is created",
        "key.updated" => "a key's settings change",
        "key.rotated" => "a key is rotated",
        "key.revoked" => "a key is revoked",
        "key.deleted" => "a key is deleted",
        "key.expiring" => "30, 7 and 1 days before a key expires",
        "key.expired" => "a key expires",
        "key.exposed" => "a key is seen in a URL",
        "key.quota_low" => "10% of a key's quota is left",
        "key.quota_exhausted" => "a key's quota is spent",
        "security.alert" => "a security event",
        "member.disabled" => "a member is disabled",
        "member.deleted" => "a member is removed",
        _ => "",
    }
}

fn enabled_badge(w: &Webhook) -> Markup {
    if w.enabled {
        badge("success", "Enabled")
    } else {
        badge("neutral", "Paused")
    }
}

fn status_badge(s: MessageStatus) -> Markup {
    match s {
        MessageStatus::Delivered => badge("success", "Delivered"),
        MessageStatus::Pending => badge("warning", "Pending"),
        MessageStatus::Failed => badge("danger", "Failed"),
    }
}

/// The endpoint fields of the create and edit forms.
fn endpoint_fields(
    prefix: &str,
    url: &str,
    events: &[String],
    description: &str,
    errors: &FieldErrors,
) -> Markup {
    let events_error = errors.of("events");
    html! {
        (input(&format!("{prefix}-url"), "url", "Endpoint URL", url, errors, Input {
            kind: "url", required: true, maxlength: Some(2000),
            placeholder: Some("https://hooks.example.com/keyward"),
            hint: Some("Where Keyward POSTs each event, signed per Standard Webhooks."),
            ..Input::default() }))
        fieldset class={ "field" @if events_error.is_some() { " has-error" } } {
            legend { "Events" }
            div class="event-checks" {
                @for ev in EVENTS {
                    label class="checkbox" for={ (prefix) "-ev-" (ev) } {
                        input type="checkbox" id={ (prefix) "-ev-" (ev) } name="events" value=(ev)
                            checked[events.iter().any(|e| e == ev)];
                        span { code { (ev) } span class="muted small" { " — " (event_hint(ev)) } }
                    }
                }
            }
            p class="field-error" role="alert" hidden[events_error.is_none()] {
                @if let Some(e) = &events_error { (e) }
            }
        }
        (input(&format!("{prefix}-description"), "description", "Description (optional)", description, errors, Input {
            maxlength: Some(500), ..Input::default() }))
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    /// A just-created endpoint, whose secret this session holds to show once.
    new: Option<String>,
}

/// A new endpoint's secret, shown once.
struct Fresh<'a> {
    hook: &'a Webhook,
    secret: String,
}

async fn list_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<ListQuery>,
) -> Response {
    let list = match service::list(&state.ctx, &m.caller).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&m), e),
    };
    let mut notice = None;
    let mut secret = None;
    if let Some(id) = q.new.as_deref() {
        match sessions::take_text(&state.ctx, &m.session, id).await {
            Ok(Some(s)) => secret = Some((id.to_owned(), s)),
            Ok(None) => {
                notice = Some("The signing secret was shown once and is no longer available.")
            }
            Err(e) => return error_page(Some(&m), e),
        }
    }
    let fresh = secret.as_ref().and_then(|(id, s)| {
        list.iter().find(|w| &w.id == id).map(|hook| Fresh {
            hook,
            secret: s.clone(),
        })
    });
    page(
        &m,
        StatusCode::OK,
        render_list(&m, &list, None, fresh.as_ref(), notice),
    )
}

fn render_list(
    m: &Member,
    list: &[Webhook],
    create: Option<(&FormData, &FieldErrors)>,
    fresh: Option<&Fresh<'_>>,
    notice: Option<&str>,
) -> Markup {
    let content = html! {
        (page_header("Webhooks", Some(html! {
            "Endpoints that receive this organization's events, signed per Standard Webhooks."
        }), html! {
            button type="button" class="btn primary" data-open="create-webhook" { "+ Add endpoint" }
        }))
        @if let Some(n) = notice { div class="notice warning" role="status" { (n) } }
        @if list.is_empty() {
            section class="card empty" {
                h2 { "No endpoints yet" }
                p { "Add an endpoint to be told when keys are revoked, expire, run out of quota, or are exposed." }
            }
        } @else {
            div class="table-wrap" {
                table class="table webhooks-table" {
                    caption class="visually-hidden" { "Webhook endpoints" }
                    thead { tr {
                        th scope="col" { "Endpoint" } th scope="col" { "Events" }
                        th scope="col" { "Status" } th scope="col" { "Added" }
                    } }
                    tbody {
                        @for w in list {
                            tr {
                                td data-label="Endpoint" {
                                    a href={ "/webhooks/" (w.id) } class="mono break" { (w.url) }
                                    @if let Some(d) = &w.description { div class="muted small" { (d) } }
                                }
                                td data-label="Events" {
                                    ul class="chips" { @for e in &w.events { li class="chip" { (e) } } }
                                }
                                td data-label="Status" { (enabled_badge(w)) }
                                td data-label="Added" { (time_date(w.created_at)) }
                            }
                        }
                    }
                }
            }
        }
        (create_dialog(m, create))
        @if let Some(f) = fresh { (secret_dialog(f)) }
    };
    layout::shell(m, Nav::Webhooks, "Webhooks", content)
}

fn create_dialog(m: &Member, create: Option<(&FormData, &FieldErrors)>) -> Markup {
    let none = FieldErrors::default();
    let errors = create.map_or(&none, |(_, e)| e);
    let form = create.map(|(f, _)| f);
    let events: Vec<String> = form
        .map(|f| f.all("events").into_iter().map(str::to_owned).collect())
        .unwrap_or_default();
    dialog(
        "create-webhook",
        "Add endpoint",
        create.is_some(),
        true,
        html! {
            form method="post" action="/webhooks" class="dialog-form" novalidate {
                div class="dialog-body" {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["url", "events", "description"])))
                    (endpoint_fields("new-hook", form.map_or("", |f| f.text("url")), &events,
                        form.map_or("", |f| f.text("description")), errors))
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn primary" { "Add endpoint" }
                }
            }
        },
    )
}

fn secret_dialog(f: &Fresh<'_>) -> Markup {
    dialog(
        "webhook-created",
        "Endpoint added",
        true,
        false,
        html! {
            div class="dialog-body" data-return="/webhooks" {
                p { "Deliveries to " code class="break" { (f.hook.url) } " are signed with this secret." }
                div class="notice warning" role="alert" {
                    strong { "Copy it now. " }
                    "It will not be shown again."
                }
                label for="new-secret" { "Signing secret" }
                div class="copy-row" {
                    textarea id="new-secret" class="mono secret" rows="2" readonly autocomplete="off"
                        spellcheck="false" data-secret { (f.secret) }
                    button type="button" class="btn primary" data-copy="new-secret" { "Copy" }
                }
                p class="hint" role="status" data-copy-status {}
                p class="hint" {
                    "Check the " code { "webhook-signature" } " header of each delivery with it, e.g. with a Standard Webhooks library."
                }
            }
            div class="dialog-footer" {
                button type="button" class="btn" data-close { "I have saved it" }
            }
        },
    )
}

fn create_input(form: &FormData) -> CreateWebhook {
    CreateWebhook {
        url: form.text("url").trim().to_owned(),
        events: form.all("events").into_iter().map(str::to_owned).collect(),
        description: form.non_empty("description"),
        enabled: None,
    }
}

async fn create(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let mut errors = FieldErrors::default();
    match service::create(&state.ctx, &m.caller, create_input(&form)).await {
        Ok((hook, secret)) => {
            let shown = secret.expose();
            return match sessions::hold_text(&state.ctx, &m.session, &hook.id, &shown).await {
                Ok(()) => Redirect::to(&format!("/webhooks?new={}", hook.id)).into_response(),
                Err(e) => {
                    // The secret cannot be had again: show it in this answer instead.
                    tracing::warn!(webhook = %hook.id, error = %e, "dashboard: showing a new webhook secret without a redirect");
                    let list = service::list(&state.ctx, &m.caller)
                        .await
                        .unwrap_or_default();
                    let fresh = Fresh {
                        hook: &hook,
                        secret: shown,
                    };
                    page(
                        &m,
                        StatusCode::CREATED,
                        render_list(&m, &list, None, Some(&fresh), None),
                    )
                }
            };
        }
        Err(ServiceError::Validation(e)) => errors = e.into(),
        Err(ServiceError::Conflict(d)) => errors.add("form", d),
        Err(e) => return error_page(Some(&m), e),
    }
    let list = match service::list(&state.ctx, &m.caller).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&m), e),
    };
    page(
        &m,
        StatusCode::UNPROCESSABLE_ENTITY,
        render_list(&m, &list, Some((&form, &errors)), None, None),
    )
}

async fn detail_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Path(id): Path<String>,
) -> Response {
    match load(&state, &m, &id).await {
        Ok((hook, log)) => page(&m, StatusCode::OK, render_detail(&m, &hook, &log, None)),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn load(
    state: &AppState,
    m: &Member,
    id: &str,
) -> Result<(Webhook, Vec<Delivery>), ServiceError> {
    let hook = service::get(&state.ctx, &m.caller, id).await?;
    let log = service::deliveries(&state.ctx, &m.caller, id, 50).await?;
    Ok((hook, log))
}

fn render_detail(
    m: &Member,
    w: &Webhook,
    log: &[Delivery],
    edit: Option<(&FormData, &FieldErrors)>,
) -> Markup {
    let none = FieldErrors::default();
    let errors = edit.map_or(&none, |(_, e)| e);
    let form = edit.map(|(f, _)| f);
    let events: Vec<String> = match form {
        Some(f) => f.all("events").into_iter().map(str::to_owned).collect(),
        None => w.events.clone(),
    };
    let content = html! {
        p class="breadcrumb" { a href="/webhooks" { "Webhooks" } " / " span class="mono" { (w.id) } }
        (page_header("Endpoint", Some(html! { span class="mono break" { (w.url) } " " (enabled_badge(w)) }), html! {
            form method="post" action={ "/webhooks/" (w.id) } class="inline" {
                (csrf_field(m))
                input type="hidden" name="toggle" value="1";
                input type="hidden" name="enabled" value=(if w.enabled { "false" } else { "true" });
                button type="submit" class="btn" { @if w.enabled { "Pause" } @else { "Enable" } }
            }
            button type="button" class="btn danger" data-open="delete-webhook" { "Delete" }
        }))
            section class="card" aria-labelledby="log-title" {
                h2 id="log-title" { "Deliveries" }
                @if log.is_empty() {
                    p class="muted" { "No event has been sent to this endpoint yet." }
                } @else {
                    div class="table-wrap" {
                        table class="table deliveries-table" {
                            caption class="visually-hidden" { "Latest deliveries" }
                            thead { tr {
                                th scope="col" { "Event" } th scope="col" { "Status" }
                                th scope="col" { "Attempts" } th scope="col" { "Last answer" }
                                th scope="col" { span class="visually-hidden" { "Actions" } }
                            } }
                            tbody {
                                @for (msg, attempts) in log {
                                    tr {
                                        td data-label="Event" {
                                            code { (msg.event) }
                                            div class="muted small mono" { (msg.id) }
                                            div class="muted small" { (date_time(msg.created_at)) }
                                        }
                                        td data-label="Status" {
                                            (status_badge(msg.status))
                                            @if let Some(next) = msg.next_attempt_at.filter(|_| msg.status == MessageStatus::Pending) {
                                                div class="muted small" { "next " (date_time(next)) }
                                            }
                                        }
                                        td data-label="Attempts" { (msg.attempts) }
                                        td data-label="Last answer" {
                                            @match (msg.response_status, &msg.last_error) {
                                                (Some(s), _) if (200..300).contains(&s) => { (s) }
                                                (_, Some(e)) => { span class="small" { (e) } }
                                                (Some(s), None) => { (s) }
                                                (None, None) => { "—" }
                                            }
                                            @if let Some(a) = attempts.last() {
                                                @if let Some(x) = &a.response_excerpt {
                                                    div class="muted small mono clip" title="The start of the receiver's answer" { (x) }
                                                }
                                            }
                                        }
                                        td class="row-actions" {
                                            form method="post" action={ "/webhooks/" (w.id) "/deliveries/" (msg.id) "/redeliver" } {
                                                (csrf_field(m))
                                                button type="submit" class="btn small" aria-label={ "Redeliver " (msg.id) } { "Redeliver" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section class="card" aria-labelledby="edit-title" {
                h2 id="edit-title" { "Settings" }
                form id="edit-webhook" method="post" action={ "/webhooks/" (w.id) } novalidate {
                    (csrf_field(m))
                    (form_errors(&errors.others(&["url", "events", "description"])))
                    (endpoint_fields("hook", form.map_or(w.url.as_str(), |f| f.text("url")), &events,
                        form.map_or(w.description.as_deref().unwrap_or(""), |f| f.text("description")), errors))
                    button type="submit" class="btn primary" { "Save changes" }
                }
            }
        (dialog("delete-webhook", "Delete endpoint", false, false, html! {
            form method="post" action={ "/webhooks/" (w.id) "/delete" } {
                div class="dialog-body" {
                    (csrf_field(m))
                    p { "Delete this endpoint? Events not delivered yet are dropped, and no further event is sent to it." }
                }
                div class="dialog-footer" {
                    button type="button" class="btn" data-close { "Cancel" }
                    button type="submit" class="btn danger" { "Delete endpoint" }
                }
            }
        }))
    };
    layout::shell(m, Nav::Webhooks, "Webhook endpoint", content)
}

async fn update(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let patch = if form.has("toggle") {
        UpdateWebhook {
            enabled: Some(form.text("enabled") == "true"),
            ..Default::default()
        }
    } else {
        UpdateWebhook {
            url: Some(form.text("url").trim().to_owned()),
            events: Some(form.all("events").into_iter().map(str::to_owned).collect()),
            description: Some(form.non_empty("description")),
            enabled: None,
        }
    };
    let errors: FieldErrors = match service::update(&state.ctx, &m.caller, &id, patch).await {
        Ok(hook) => {
            let notice = if form.has("toggle") {
                if hook.enabled {
                    "Endpoint enabled."
                } else {
                    "Endpoint paused: no event is queued for it until it is enabled again."
                }
            } else {
                "Saved the endpoint."
            };
            return redirect_with_notice(&m, &format!("/webhooks/{}", hook.id), notice);
        }
        Err(ServiceError::Validation(e)) => e.into(),
        Err(e) => return error_page(Some(&m), e),
    };
    match load(&state, &m, &id).await {
        Ok((hook, log)) => page(
            &m,
            StatusCode::UNPROCESSABLE_ENTITY,
            render_detail(&m, &hook, &log, Some((&form, &errors))),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn delete(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    match service::delete(&state.ctx, &m.caller, &id).await {
        Ok(()) => redirect_with_notice(&m, "/webhooks", "Endpoint deleted."),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn redeliver(
    State(state): State<Arc<AppState>>,
    Path((id, msg_id)): Path<(String, String)>,
    Submitted { member: m, .. }: Submitted,
) -> Response {
    match service::redeliver(&state.ctx, &m.caller, &id, &msg_id).await {
        Ok(_) => redirect_with_notice(
            &m,
            &format!("/webhooks/{id}"),
            "Queued again: it is sent in a moment, with the same webhook-id.",
        ),
        Err(e) => error_page(Some(&m), e),
    }
}
