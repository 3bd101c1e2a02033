//! `GET /v1/audit-log`: who did what to which key, when, from where.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use crate::domain::model::AuditEvent;
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::views::rfc3339;
use crate::service::{Caller, audit};
use crate::store::AuditFilter;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/audit-log", get(list_audit_log))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    /// `user`, `key` or `system`.
    pub kind: String,
    pub id: Option<String>,
    /// A member's email or a key's masked prefix.
    pub label: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    pub label: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    pub action: String,
    pub actor: ActorView,
    pub target: TargetView,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub created_at: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        AuditEventView {
            id: e.id.clone(),
            action: e.action.clone(),
            actor: ActorView {
                kind: e.actor.kind.to_owned(),
                id: e.actor.id.clone(),
                label: e.actor.label.clone(),
            },
            target: TargetView {
                kind: e.target_type.clone(),
                id: e.target_id.clone(),
                label: e.target_label.clone(),
            },
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            details: e.details.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditList {
    pub data: Vec<AuditEventView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// A member or key id, or an actor label (email, masked prefix).
    pub actor: Option<String>,
    /// e.g. `key.created`, `key.revoked`.
    pub action: Option<String>,
    /// The id of the key, member or API acted on.
    pub target_id: Option<String>,
    /// Inclusive.
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Exclusive.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// 1 to 100, default 50.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| ApiError::BadRequest(format!("'{name}' must be an RFC 3339 time.")))
}

#[utoipa::path(get, path = "/v1/audit-log", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditList), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["audit:read"])))]
pub async fn list_audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::BadRequest(
            "'limit' must be between 1 and 100.".into(),
        ));
    }
    let cursor = match &q.cursor {
        Some(c) if (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
            Some(c.parse::<i64>().expect("up to 18 digits"))
        }
        Some(_) => return Err(ApiError::BadRequest("'cursor' is not valid.".into())),
        None => None,
    };
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target_id: q.target_id,
        from: q
            .from
            .as_deref()
            .map(|s| parse_time("from", s))
            .transpose()?,
        to: q.to.as_deref().map(|s| parse_time("to", s)).transpose()?,
        limit: limit + 1,
        cursor,
    };
    let mut events = audit::list(&state.ctx, &caller, &filter).await?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    Ok(Json(AuditList {
        data: events
            .iter()
            .map(|(_, e)| AuditEventView::from(e))
            .collect(),
        next_cursor,
    }))
}
