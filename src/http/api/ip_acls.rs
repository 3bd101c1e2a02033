//! `/v1/ip-acls`: named IP ACLs shared by many keys.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::{IpAclList, IpAclView};
use crate::service::Caller;
use crate::service::acls::{self, CreateIpAcl, UpdateIpAcl};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/ip-acls", get(list_ip_acls).post(create_ip_acl))
        .route(
            "/v1/ip-acls/{id}",
            get(get_ip_acl).patch(update_ip_acl).delete(delete_ip_acl),
        )
}

#[utoipa::path(get, path = "/v1/ip-acls", tag = "access",
    responses((status = 200, body = IpAclList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn list_ip_acls(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<IpAclList>, ApiError> {
    let list = acls::list(&state.ctx, &caller).await?;
    Ok(Json(IpAclList {
        data: list.iter().map(IpAclView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/ip-acls", tag = "access", request_body = CreateIpAcl,
    responses(
        (status = 201, body = IpAclView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn create_ip_acl(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateIpAcl>,
) -> Result<(StatusCode, Json<IpAclView>), ApiError> {
    let acl = acls::create(&state.ctx, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(IpAclView::from(&acl))))
}

#[utoipa::path(get, path = "/v1/ip-acls/{id}", tag = "access", params(("id" = String, Path, description = "acl_...")),
    responses((status = 200, body = IpAclView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn get_ip_acl(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IpAclView>, ApiError> {
    Ok(Json(IpAclView::from(
        &acls::get(&state.ctx, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/v1/ip-acls/{id}", tag = "access", request_body = UpdateIpAcl,
    params(("id" = String, Path, description = "acl_...")),
    responses(
        (status = 200, description = "Changed; every key that uses it follows at once", body = IpAclView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn update_ip_acl(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateIpAcl>,
) -> Result<Json<IpAclView>, ApiError> {
    Ok(Json(IpAclView::from(
        &acls::update(&state.ctx, &caller, &id, body).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/ip-acls/{id}", tag = "access", params(("id" = String, Path, description = "acl_...")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Keys still use it", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn delete_ip_acl(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    acls::delete(&state.ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
