//! `/v1/webhooks`: signed event deliveries to an organization's endpoints.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::AppState;
use crate::http::api::keys::secret_response;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::views::rfc3339;
use crate::service::Caller;
use crate::service::webhooks::{self, CreateWebhook, Delivery, UpdateWebhook};
use crate::webhooks::model::Webhook;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/webhooks", post(create_webhook).get(list_webhooks))
        .route(
            "/v1/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/v1/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/v1/webhooks/{id}/deliveries/{msg_id}/redeliver",
            post(redeliver),
        )
}

/// An endpoint as returned: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    #[schema(value_type = Vec<crate::webhooks::EventName>)]
    pub events: Vec<String>,
    pub description: Option<String>,
    pub enabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            description: w.description.clone(),
            enabled: w.enabled,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

/// A new endpoint, with its signing secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookView {
    /// `whsec_` and the base64 of the secret's bytes. Store it now: it is not shown again.
    #[schema(pattern = r"^whsec_[A-Za-z0-9+/]+={0,2}$")]
    pub secret: String,
    #[serde(flatten)]
    pub data: WebhookView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
}

/// One attempt at a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// 1 for the first attempt.
    pub attempt: i64,
    #[schema(format = DateTime)]
    pub at: String,
    pub duration_ms: i64,
    /// The receiver's HTTP status; `null` when it did not answer.
    pub response_status: Option<i64>,
    /// Why the attempt failed, when it did.
    pub error: Option<String>,
    /// The first bytes of the receiver's answer (at most 256).
    pub response_excerpt: Option<String>,
}

/// A message to an endpoint: one event, the same `webhook-id` on every attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The `webhook-id` (`msg_...`).
    pub id: String,
    #[schema(value_type = crate::webhooks::EventName)]
    pub event: String,
    /// `pending`, `delivered` or `failed`.
    #[schema(pattern = "^(pending|delivered|failed)$")]
    pub status: &'static str,
    pub attempts: i64,
    /// The receiver's status at the latest attempt.
    pub response_status: Option<i64>,
    /// When the next attempt is due; `null` once delivered or failed.
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// Why the latest attempt failed.
    pub last_error: Option<String>,
    /// The latest attempts (up to 20), oldest first.
    pub attempt_log: Vec<AttemptView>,
}

impl From<&Delivery> for DeliveryView {
    fn from((m, attempts): &Delivery) -> Self {
        DeliveryView {
            id: m.id.clone(),
            event: m.event.clone(),
            status: m.status.as_str(),
            attempts: m.attempts,
            response_status: m.response_status,
            next_attempt_at: m.next_attempt_at.map(rfc3339),
            created_at: rfc3339(m.created_at),
            delivered_at: m.delivered_at.map(rfc3339),
            last_error: m.last_error.clone(),
            attempt_log: attempts
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    at: rfc3339(a.at),
                    duration_ms: a.duration_ms,
                    response_status: a.response_status,
                    error: a.error.clone(),
                    response_excerpt: a.response_excerpt.clone(),
                })
                .collect(),
        }
    }
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses(
        (status = 201, description = "Created; the signing `secret` is in the body this once", body = CreatedWebhookView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The organization's limit of endpoints is reached", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn create_webhook(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<Response, ApiError> {
    let (hook, secret) = webhooks::create(&state.ctx, &caller, body).await?;
    Ok(secret_response(
        StatusCode::CREATED,
        CreatedWebhookView {
            secret: secret.expose(),
            data: WebhookView::from(&hook),
        },
    ))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, body = WebhookList),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn list_webhooks(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<WebhookList>, ApiError> {
    let list = webhooks::list(&state.ctx, &caller).await?;
    Ok(Json(WebhookList {
        data: list.iter().map(WebhookView::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "wh_...")),
    responses(
        (status = 200, body = WebhookView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn get_webhook(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::from(
        &webhooks::get(&state.ctx, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = String, Path, description = "wh_...")),
    responses(
        (status = 200, body = WebhookView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn update_webhook(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::from(
        &webhooks::update(&state.ctx, &caller, &id, body).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "wh_...")),
    responses(
        (status = 204, description = "Deleted, with its deliveries not yet made"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn delete_webhook(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    webhooks::delete(&state.ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "wh_..."), DeliveriesQuery),
    responses(
        (status = 200, description = "The latest deliveries, newest first", body = Vec<DeliveryView>),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=webhooks::DELIVERIES_MAX).contains(&limit) {
        return Err(ApiError::BadRequest(
            "'limit' must be between 1 and 100.".into(),
        ));
    }
    let list = webhooks::deliveries(&state.ctx, &caller, &id, limit).await?;
    Ok(Json(list.iter().map(DeliveryView::from).collect()))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{msg_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path, description = "wh_..."), ("msg_id" = String, Path, description = "msg_...")),
    responses(
        (status = 202, description = "Queued again, due now, with a new schedule of retries", body = DeliveryView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn redeliver(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((id, msg_id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let delivery = webhooks::redeliver(&state.ctx, &caller, &id, &msg_id).await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&delivery))))
}
