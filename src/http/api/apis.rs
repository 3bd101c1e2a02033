//! `/v1/apis`: the protected APIs keys are issued for.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{ApiList, ApiView};
use crate::service::Caller;
use crate::service::apis::{self, CreateApi, UpdateApi};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/apis", get(list_apis).post(create_api))
        .route("/v1/apis/{id}", get(get_api).patch(update_api))
}

#[utoipa::path(get, path = "/v1/apis", tag = "apis",
    responses((status = 200, body = ApiList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn list_apis(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<ApiList>, ApiError> {
    let list = apis::list(&state.ctx, &caller).await?;
    Ok(Json(ApiList {
        data: list.iter().map(ApiView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/apis", tag = "apis", request_body = CreateApi,
    responses(
        (status = 201, body = ApiView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The slug is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["apis:write"])))]
pub async fn create_api(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateApi>,
) -> Result<(StatusCode, Json<ApiView>), ApiError> {
    let api = apis::create(&state.ctx, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(ApiView::from(&api))))
}

#[utoipa::path(get, path = "/v1/apis/{id}", tag = "apis", params(("id" = String, Path, description = "api_...")),
    responses((status = 200, body = ApiView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn get_api(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ApiView>, ApiError> {
    Ok(Json(ApiView::from(
        &apis::get(&state.ctx, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/v1/apis/{id}", tag = "apis", request_body = UpdateApi,
    params(("id" = String, Path, description = "api_...")),
    responses(
        (status = 200, body = ApiView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["apis:write"])))]
pub async fn update_api(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateApi>,
) -> Result<Json<ApiView>, ApiError> {
    Ok(Json(ApiView::from(
        &apis::update(&state.ctx, &caller, &id, body).await?,
    )))
}
