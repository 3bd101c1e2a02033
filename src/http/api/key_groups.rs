//! `/v1/key-groups`: key groups: scopes and a rate limit shared by keys of one API.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{KeyGroupList, KeyGroupView};
use crate::service::Caller;
use crate::service::groups::{self, CreateKeyGroup, UpdateKeyGroup};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route(
            "/v1/key-groups",
            get(list_key_groups).post(create_key_group),
        )
        .route(
            "/v1/key-groups/{id}",
            get(get_key_group)
                .patch(update_key_group)
                .delete(delete_key_group),
        )
}

#[utoipa::path(get, path = "/v1/key-groups", tag = "access",
    responses((status = 200, body = KeyGroupList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn list_key_groups(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<KeyGroupList>, ApiError> {
    let list = groups::list(&state.ctx, &caller).await?;
    Ok(Json(KeyGroupList {
        data: list.iter().map(KeyGroupView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/key-groups", tag = "access", request_body = CreateKeyGroup,
    responses(
        (status = 201, body = KeyGroupView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn create_key_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateKeyGroup>,
) -> Result<(StatusCode, Json<KeyGroupView>), ApiError> {
    let acl = groups::create(&state.ctx, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(KeyGroupView::from(&acl))))
}

#[utoipa::path(get, path = "/v1/key-groups/{id}", tag = "access", params(("id" = String, Path, description = "grp_...")),
    responses((status = 200, body = KeyGroupView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn get_key_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyGroupView>, ApiError> {
    Ok(Json(KeyGroupView::from(
        &groups::get(&state.ctx, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/v1/key-groups/{id}", tag = "access", request_body = UpdateKeyGroup,
    params(("id" = String, Path, description = "grp_...")),
    responses(
        (status = 200, description = "Changed; every member key follows at once", body = KeyGroupView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn update_key_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateKeyGroup>,
) -> Result<Json<KeyGroupView>, ApiError> {
    Ok(Json(KeyGroupView::from(
        &groups::update(&state.ctx, &caller, &id, body).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/key-groups/{id}", tag = "access", params(("id" = String, Path, description = "grp_...")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Keys are still in it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn delete_key_group(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    groups::delete(&state.ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
