//! `GET /v1/account/usage` and `GET /v1/keys/{id}/usage`: verifications counted per key per
//! minute, hour and day, by verdict code (contract section 9).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::AppState;
use crate::http::error::{ApiError, Problem};
use crate::http::extract::ApiQuery;
use crate::http::views::rfc3339;
use crate::service::Caller;
use crate::usage::report::{self, Counts, RangeQuery, Report};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/v1/account/usage", get(get_account_usage))
        .route("/v1/keys/{id}/usage", get(get_key_usage))
}

/// The range and resolution of a usage report. Times are rounded out to whole buckets (UTC).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageParams {
    /// Start, inclusive (RFC 3339), rounded down to its bucket. Default: `to` less 60 minutes,
    /// 24 hours or 30 days (by minute, hour or day). No earlier than the granularity's retention
    /// (by default 48 hours by minute, 90 days by hour, 730 days by day).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// End, exclusive (RFC 3339), rounded up to its bucket. Default: the end of the current one.
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// `minute`, `hour` (default) or `day`. A range holds at most 1,440 buckets.
    #[param(value_type = Option<Granularity>)]
    pub granularity: Option<String>,
}

/// A series' resolution.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl From<UsageParams> for RangeQuery {
    fn from(p: UsageParams) -> Self {
        RangeQuery {
            from: p.from,
            to: p.to,
            granularity: p.granularity,
        }
    }
}

/// Verifications counted: `refused` is `requests` less `valid`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageTotals {
    pub requests: i64,
    pub valid: i64,
    pub refused: i64,
    /// Verifications by verdict code (`VALID`, `REVOKED`, `RATE_LIMITED`, ...); only codes that
    /// occurred.
    pub by_code: BTreeMap<String, i64>,
}

impl From<&Counts> for UsageTotals {
    fn from(c: &Counts) -> Self {
        UsageTotals {
            requests: c.requests,
            valid: c.valid,
            refused: c.refused(),
            by_code: c.by_code.clone(),
        }
    }
}

/// One bucket of a series.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsagePoint {
    /// The bucket's start (RFC 3339, UTC).
    pub start: String,
    pub requests: i64,
    pub valid: i64,
    pub refused: i64,
    /// Verifications in this bucket by verdict code; only codes that occurred.
    pub by_code: BTreeMap<String, i64>,
}

/// One key's verifications over the range.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsage {
    pub key_id: String,
    /// The key's prefix and public id, as lists show it (never the secret).
    pub prefix: String,
    pub requests: i64,
    pub valid: i64,
    pub refused: i64,
    /// The key's latest use, whenever it was (also outside the range).
    pub last_used_at: Option<String>,
}

/// The usage of the caller's organization. Verifications that no key could be attributed to
/// (malformed, unknown keys) count in `totals` and `series`, not under any key.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountUsage {
    pub from: String,
    pub to: String,
    #[schema(value_type = Granularity)]
    pub granularity: &'static str,
    pub totals: UsageTotals,
    /// The 100 keys with the most verifications in the range, most first.
    pub keys: Vec<KeyUsage>,
    /// One point per bucket of the range, in order, empty ones included.
    pub series: Vec<UsagePoint>,
}

/// The usage of one key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyUsageReport {
    pub key_id: String,
    pub from: String,
    pub to: String,
    #[schema(value_type = Granularity)]
    pub granularity: &'static str,
    pub totals: UsageTotals,
    /// One point per bucket of the range, in order, empty ones included.
    pub series: Vec<UsagePoint>,
}

fn series(r: &Report) -> Vec<UsagePoint> {
    r.series
        .iter()
        .map(|(start, c)| UsagePoint {
            start: rfc3339(*start),
            requests: c.requests,
            valid: c.valid,
            refused: c.refused(),
            by_code: c.by_code.clone(),
        })
        .collect()
}

#[utoipa::path(get, path = "/v1/account/usage", tag = "usage", params(UsageParams),
    responses(
        (status = 200, body = AccountUsage),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `from`, `to` or `granularity`, or a range too long or older than the retention", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["usage:read"])))]
pub async fn get_account_usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<Json<AccountUsage>, ApiError> {
    let r = report::org_usage(&state.ctx, &caller, &q.into()).await?;
    Ok(Json(AccountUsage {
        from: rfc3339(r.range.from),
        to: rfc3339(r.range.to),
        granularity: r.range.granularity.as_str(),
        totals: (&r.totals).into(),
        keys: r
            .keys
            .iter()
            .flatten()
            .map(|k| KeyUsage {
                key_id: k.key_id.clone(),
                prefix: k.prefix.clone(),
                requests: k.requests,
                valid: k.valid,
                refused: k.requests - k.valid,
                last_used_at: k.last_used_at.map(rfc3339),
            })
            .collect(),
        series: series(&r),
    }))
}

#[utoipa::path(get, path = "/v1/keys/{id}/usage", tag = "usage", params(("id" = String, Path), UsageParams),
    responses(
        (status = 200, body = KeyUsageReport),
        (status = 400, description = "An unknown query parameter", body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in the caller's organization", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A bad `from`, `to` or `granularity`, or a range too long or older than the retention", body = Problem, content_type = "application/problem+json"),
    ),
    security(("management_key" = ["usage:read"])))]
pub async fn get_key_usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<UsageParams>,
) -> Result<Json<KeyUsageReport>, ApiError> {
    let r = report::key_usage(&state.ctx, &caller, &id, &q.into()).await?;
    Ok(Json(KeyUsageReport {
        key_id: r.key_id.clone().unwrap_or(id),
        from: rfc3339(r.range.from),
        to: rfc3339(r.range.to),
        granularity: r.range.granularity.as_str(),
        totals: (&r.totals).into(),
        series: series(&r),
    }))
}
