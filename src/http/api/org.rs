//! `/v1/org`: plan status, API access and key policies.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::model::{Org, Policies};
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiJson;
use crate::http::views::rfc3339;
use crate::service::Caller;
use crate::service::org::{self, UpdateOrg};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/org", get(get_org).patch(update_org))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PoliciesView {
    pub key_limit: u32,
    pub allowed_expiries: Vec<&'static str>,
    pub scopes_editable: bool,
    pub single_active_key: bool,
    pub recoverable_keys: bool,
}

impl From<&Policies> for PoliciesView {
    fn from(p: &Policies) -> Self {
        PoliciesView {
            key_limit: p.key_limit,
            allowed_expiries: p.allowed_expiries.iter().map(|c| c.as_str()).collect(),
            scopes_editable: p.scopes_editable,
            single_active_key: p.single_active_key,
            recoverable_keys: p.recoverable_keys,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgView {
    pub id: String,
    pub name: String,
    pub plan: String,
    pub api_access: bool,
    /// `active` or `past_due`.
    pub billing_status: String,
    /// Whether keys of protected APIs are accepted right now (plan, switch and billing together).
    pub api_access_effective: bool,
    pub policies: PoliciesView,
    pub created_at: String,
}

fn view(state: &AppState, o: &Org) -> OrgView {
    OrgView {
        id: o.id.clone(),
        name: o.name.clone(),
        plan: o.plan.clone(),
        api_access: o.api_access,
        billing_status: o.billing_status.clone(),
        api_access_effective: o.has_api_access(state.ctx.verifier.plans_without_access()),
        policies: PoliciesView::from(&o.policies),
        created_at: rfc3339(o.created_at),
    }
}

#[utoipa::path(get, path = "/v1/org", tag = "organization",
    responses((status = 200, body = OrgView), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["keys:read"])))]
pub async fn get_org(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<OrgView>, ApiError> {
    let org = org::get(&state.ctx, &caller).await?;
    Ok(Json(view(&state, &org)))
}

#[utoipa::path(patch, path = "/v1/org", tag = "organization", request_body = UpdateOrg,
    responses(
        (status = 200, body = OrgView),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["org:admin"])))]
pub async fn update_org(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<UpdateOrg>,
) -> Result<Json<OrgView>, ApiError> {
    let org = org::update(&state.ctx, &caller, body).await?;
    Ok(Json(view(&state, &org)))
}
