//! `/v1/users`: members and roles.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::model::User;
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::rfc3339;
use crate::service::Caller;
use crate::service::users::{self, CreateUser, UpdateUser};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/users", get(list_users).post(create_user))
        .route(
            "/v1/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    /// `null` for a service account.
    pub email: Option<String>,
    pub name: String,
    /// `person` or `service` (a service account: owns keys, never signs in).
    pub kind: &'static str,
    /// `owner`, `admin`, `developer` or `viewer`.
    pub role: &'static str,
    /// `active` or `disabled`.
    pub status: &'static str,
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.clone(),
            email: (!u.is_service()).then(|| u.email.clone()),
            name: u.name.clone(),
            kind: u.kind.as_str(),
            role: u.role.as_str(),
            status: u.status.as_str(),
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub data: Vec<UserView>,
}

#[utoipa::path(get, path = "/v1/users", tag = "members",
    responses((status = 200, body = UserList), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    let list = users::list(&state.ctx, &caller).await?;
    Ok(Json(UserList {
        data: list.iter().map(UserView::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/users", tag = "members", request_body = CreateUser,
    responses(
        (status = 201, body = UserView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["users:write"])))]
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = users::create(&state.ctx, &caller, body).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "members", params(("id" = String, Path, description = "usr_...")),
    responses((status = 200, body = UserView), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn get_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(
        &users::get(&state.ctx, &caller, &id).await?,
    )))
}

#[utoipa::path(patch, path = "/v1/users/{id}", tag = "members", request_body = UpdateUser,
    params(("id" = String, Path, description = "usr_...")),
    responses(
        (status = 200, body = UserView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be demoted or disabled", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["users:write"])))]
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(UserView::from(
        &users::update(&state.ctx, &caller, &id, body).await?,
    )))
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "members", params(("id" = String, Path, description = "usr_...")),
    responses(
        (status = 204, description = "Deleted; every key the member owned is revoked"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The last owner cannot be deleted", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["users:write"])))]
pub async fn delete_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    users::delete(&state.ctx, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
