//! `GET /v1/security-events`: what the detectors found, newest first.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::domain::security::{EventType, SecurityEvent};
use crate::domain::validate::FieldError;
use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::views::rfc3339;
use crate::service::Caller;
use crate::store::EventFilter;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/v1/security-events", get(list_security_events))
}

/// The types of security event.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityEventType {
    AuthFailures,
    NewIp,
    UsageSpike,
    GracePeriodUse,
    KeyExposed,
}

/// How urgent an event is.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecuritySeverity {
    Low,
    Medium,
    High,
    Critical,
}

/// A security event. It names a key by its id and public prefix, never by its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventView {
    /// `sev_` and 16 hex characters.
    #[schema(pattern = r"^sev_[0-9a-f]{16}$")]
    pub id: String,
    /// `auth_failures`, `new_ip`, `usage_spike`, `grace_period_use` or `key_exposed`.
    #[serde(rename = "type")]
    #[schema(value_type = SecurityEventType)]
    pub kind: &'static str,
    /// `low` (an old key used in its grace period), `medium` (a new network, a usage spike),
    /// `high` (refused keys), `critical` (a key exposed).
    #[schema(value_type = SecuritySeverity)]
    pub severity: &'static str,
    /// The key concerned; `null` for refused keys counted by client address.
    pub key_id: Option<String>,
    /// The key's public prefix, e.g. `kw_live_3f9a0c1e7b2d`.
    pub prefix: Option<String>,
    /// The client address concerned, when known.
    pub ip: Option<String>,
    /// The requests the event covers; it grows while its burst goes on.
    #[schema(minimum = 1)]
    pub count: i64,
    pub detail: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

impl From<&SecurityEvent> for SecurityEventView {
    fn from(e: &SecurityEvent) -> Self {
        SecurityEventView {
            id: e.id.clone(),
            kind: e.kind.as_str(),
            severity: e.severity.as_str(),
            key_id: e.key_id.clone(),
            prefix: e.prefix.clone(),
            ip: e.ip.clone(),
            count: e.count,
            detail: e.detail.clone(),
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEventList {
    pub data: Vec<SecurityEventView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Every parameter is read as text and checked here, so that each bad one is named in a 422.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SecurityEventQuery {
    /// Only events of this type.
    #[param(value_type = Option<SecurityEventType>)]
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Only events about this key of the organization (404 when there is no such key).
    #[param(pattern = r"^key_[0-9a-f]{12}$")]
    pub key_id: Option<String>,
    /// 1 to 100, default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the page before.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// `key_` and 12 lowercase hex characters.
fn is_key_id(id: &str) -> bool {
    id.strip_prefix("key_").is_some_and(|hex| {
        hex.len() == 12
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn invalid(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl SecurityEventQuery {
    /// The filter, or a 422 naming every invalid parameter.
    fn filter(&self) -> Result<EventFilter, ApiError> {
        let mut errors = Vec::new();
        let kind = match self.kind.as_deref() {
            None => None,
            Some(t) => match EventType::parse(t) {
                Some(k) => Some(k),
                None => {
                    errors.push(invalid(
                        "type",
                        "must be one of auth_failures, new_ip, usage_spike, grace_period_use, key_exposed",
                    ));
                    None
                }
            },
        };
        let key_id = match self.key_id.as_deref() {
            None => None,
            Some(id) if is_key_id(id) => Some(id.to_owned()),
            Some(_) => {
                errors.push(invalid(
                    "key_id",
                    "must be a key id: key_ followed by 12 lowercase hex characters",
                ));
                None
            }
        };
        let limit = match self.limit.as_deref() {
            None => 50,
            Some(l) => match l.parse::<u32>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    errors.push(invalid("limit", "must be a whole number from 1 to 100"));
                    50
                }
            },
        };
        let cursor = match self.cursor.as_deref() {
            None => None,
            Some(c) if (1..=18).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
                c.parse::<i64>().ok()
            }
            Some(_) => {
                errors.push(invalid(
                    "cursor",
                    "must be the next_cursor of an earlier page",
                ));
                None
            }
        };
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(EventFilter {
            kind,
            key_id,
            limit: limit + 1,
            cursor,
        })
    }
}

#[utoipa::path(get, path = "/v1/security-events", tag = "security", params(SecurityEventQuery),
    responses((status = 200, body = SecurityEventList),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, description = "`key_id` names no key of the organization", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("management_key" = ["audit:read"])))]
pub async fn list_security_events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SecurityEventQuery>,
) -> Result<Json<SecurityEventList>, ApiError> {
    let filter = q.filter()?;
    let limit = (filter.limit - 1) as usize;
    let mut events = crate::events::list(&state.ctx, &caller, &filter).await?;
    let next_cursor = if events.len() > limit {
        events.truncate(limit);
        events.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    Ok(Json(SecurityEventList {
        data: events
            .iter()
            .map(|(_, e)| SecurityEventView::from(e))
            .collect(),
        next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(
        kind: Option<&str>,
        key_id: Option<&str>,
        limit: Option<&str>,
        cursor: Option<&str>,
    ) -> SecurityEventQuery {
        SecurityEventQuery {
            kind: kind.map(Into::into),
            key_id: key_id.map(Into::into),
            limit: limit.map(Into::into),
            cursor: cursor.map(Into::into),
        }
    }

    #[test]
    fn every_invalid_parameter_is_named() {
        let Err(ApiError::Validation(errors)) = query(
            Some("auth_failure"),
            Some("key_XYZ"),
            Some("0"),
            Some("abc"),
        )
        .filter() else {
            panic!("refused");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["type", "key_id", "limit", "cursor"]);
    }

    #[test]
    fn defaults_ask_one_more_than_a_page() {
        let f = query(None, None, None, None).filter().unwrap();
        assert_eq!(f.limit, 51);
        let f = query(
            Some("new_ip"),
            Some("key_3f9a0c1e7b2d"),
            Some("100"),
            Some("42"),
        )
        .filter()
        .unwrap();
        assert_eq!(
            (f.kind, f.limit, f.cursor),
            (Some(EventType::NewIp), 101, Some(42))
        );
    }
}
