//! `/v1/keys`: the key lifecycle over HTTP.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::views::{CreatedKeyView, KeyList, KeyView, decode_cursor, encode_cursor};
use crate::service::Caller;
use crate::service::keys::{self, CreateKey, RevokeKey, RotateKey, UpdateKey};
use crate::store::{KeyFilter, StatusFilter};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/keys", post(create_key).get(list_keys))
        .route(
            "/v1/keys/{id}",
            get(get_key).patch(update_key).delete(delete_key),
        )
        .route("/v1/keys/{id}/rotate", post(rotate_key))
        .route("/v1/keys/{id}/revoke", post(revoke_key))
        .route("/v1/keys/{id}/secret", get(reveal_key_secret))
}

/// A response carrying a secret: never cached anywhere.
pub(crate) fn secret_response(status: StatusCode, body: impl serde::Serialize) -> Response {
    let mut res = (status, Json(body)).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses(
        (status = 201, description = "Created; the full `key` is in the body this once", body = CreatedKeyView),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Key limit reached", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:write"])))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<Response, ApiError> {
    let created = keys::create(&state.ctx, &caller, body).await?;
    let now = state.ctx.now();
    Ok(secret_response(
        StatusCode::CREATED,
        CreatedKeyView {
            key: created.secret.expose(),
            data: KeyView::new(&created.key, now),
            revoked_keys: created.revoked,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListKeysQuery {
    pub api_id: Option<String>,
    /// Default: every key but deleted ones.
    #[param(value_type = Option<crate::domain::schema::KeyStatusFilter>)]
    pub status: Option<String>,
    pub owner_id: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(pattern = r"^(3[0-9]){1,18}7c(3[0-9]|5f|6[1-9a-f]|7[0-9a])+$")]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(ListKeysQuery),
    responses(
        (status = 200, body = KeyList),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:read"])))]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListKeysQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "'limit' must be between 1 and 100.".into(),
        ));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some("active") => Some(StatusFilter::Active),
        Some("revoked") => Some(StatusFilter::Revoked),
        Some("expired") => Some(StatusFilter::Expired),
        Some("all") => Some(StatusFilter::All),
        Some(_) => {
            return Err(ApiError::BadRequest(
                "'status' must be one of active, revoked, expired, all.".into(),
            ));
        }
    };
    let cursor = match q.cursor.as_deref() {
        Some(c) => Some(
            decode_cursor(c)
                .ok_or_else(|| ApiError::BadRequest("'cursor' is not valid.".into()))?,
        ),
        None => None,
    };
    let filter = KeyFilter {
        api_id: q.api_id,
        owner_id: q.owner_id,
        status,
        limit: limit + 1,
        cursor,
        ..KeyFilter::default()
    };
    let mut found = keys::list(&state.ctx, &caller, &filter).await?;
    let next_cursor = if found.len() > limit as usize {
        found.truncate(limit as usize);
        found.last().map(|k| encode_cursor(k.created_at, &k.id))
    } else {
        None
    };
    let now = state.ctx.now();
    Ok(Json(KeyList {
        data: found.iter().map(|k| KeyView::new(k, now)).collect(),
        next_cursor,
    })
    .into_response())
}

#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 200, body = KeyView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:read"])))]
pub async fn get_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = keys::get(&state.ctx, &caller, &id).await?;
    Ok(Json(KeyView::new(&key, state.ctx.now())).into_response())
}

#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys", request_body = UpdateKey,
    params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 200, body = KeyView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked or deleted", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:write"])))]
pub async fn update_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateKey>,
) -> Result<Response, ApiError> {
    let key = keys::update(&state.ctx, &caller, &id, body).await?;
    Ok(Json(KeyView::new(&key, state.ctx.now())).into_response())
}

#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys", request_body = RotateKey,
    params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 201, description = "The replacement, with its full `key` this once; `replaces` names the old key", body = CreatedKeyView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:write"])))]
pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RotateKey>,
) -> Result<Response, ApiError> {
    let (key, secret) = keys::rotate(&state.ctx, &caller, &id, body).await?;
    Ok(secret_response(
        StatusCode::CREATED,
        CreatedKeyView {
            key: secret.expose(),
            data: KeyView::new(&key, state.ctx.now()),
            revoked_keys: Vec::new(),
        },
    ))
}

#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys", request_body = RevokeKey,
    params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 200, description = "Revoked (idempotent)", body = KeyView),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:delete"])))]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RevokeKey>,
) -> Result<Response, ApiError> {
    let key = keys::revoke(&state.ctx, &caller, &id, body).await?;
    Ok(Json(KeyView::new(&key, state.ctx.now())).into_response())
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 204, description = "Revoked and hidden from default listings"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:delete"])))]
pub async fn delete_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    keys::delete(&state.ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The secret of a recoverable key.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RevealedKey<'a> {
    pub id: &'a str,
    pub key: &'a str,
}

#[utoipa::path(get, path = "/v1/keys/{id}/secret", tag = "keys",
    params(("id" = String, Path, description = "key_...")),
    responses(
        (status = 200, description = "The full key; the reveal is recorded in the audit log", body = RevealedKey),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is not recoverable, or revoked", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["keys:reveal"])))]
pub async fn reveal_key_secret(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (key, secret) = keys::reveal(&state.ctx, &caller, &id).await?;
    Ok(secret_response(
        StatusCode::OK,
        RevealedKey {
            id: &key.id,
            key: secret.expose(),
        },
    ))
}
