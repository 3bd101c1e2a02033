//! Usage: the organization's page (totals, a chart of requests over time, valid and refused by
//! code, the keys used most) and the same for one key on its page; the chart is SVG drawn on
//! the server. Also the last-use times the keys list refreshes without a reload.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Nav, page_header, time_ago};
use super::{Member, error_page, page};
use crate::domain::model::Millis;
use crate::http::AppState;
use crate::http::views::rfc3339;
use crate::service::keys;
use crate::store::Granularity;
use crate::usage::report::{self, Counts, RangeQuery, Report};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/usage", get(usage_page))
        .route("/keys/last-used", get(last_used))
}

/// The ranges the page offers: one per granularity, at its default length.
const RANGES: [(&str, &str); 3] = [
    ("minute", "Last hour, by minute"),
    ("hour", "Last 24 hours, by hour"),
    ("day", "Last 30 days, by day"),
];

#[derive(Debug, Default, Deserialize)]
struct UsageQuery {
    granularity: Option<String>,
}

async fn usage_page(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<UsageQuery>,
) -> Response {
    // An unknown choice falls back to the default rather than an error page.
    let granularity = q
        .granularity
        .filter(|g| Granularity::parse(g).is_some())
        .unwrap_or_else(|| "hour".to_owned());
    let range = RangeQuery {
        granularity: Some(granularity.clone()),
        ..RangeQuery::default()
    };
    let r = match report::org_usage(&state.ctx, &m.caller, &range).await {
        Ok(r) => r,
        Err(e) => return error_page(Some(&m), e),
    };
    let content = html! {
        (page_header("Usage", Some(html! {
            "Every verification by the verify endpoint and the gateway, counted per key per minute by its verdict. Keys that could not be identified count for the organization only."
        }), html! {}))
        form class="filters" method="get" action="/usage" aria-label="Range" {
            div class="filter" {
                label for="usage-range" { "Range" }
                select id="usage-range" name="granularity" data-autosubmit {
                    @for (value, label) in RANGES {
                        option value=(value) selected[granularity == value] { (label) }
                    }
                }
            }
            div class="filter filter-actions" {
                button type="submit" class="btn" { "Show" }
            }
        }
        (summary(&r))
        section class="card" aria-labelledby="chart-title" {
            h2 id="chart-title" { "Requests over time" }
            (chart(&r))
        }
        div class="detail-grid" {
            section class="card" aria-labelledby="top-title" {
                h2 id="top-title" { "Keys used most" }
                (top_keys(&r, m.now))
            }
            section class="card" aria-labelledby="codes-title" {
                h2 id="codes-title" { "By verdict" }
                (codes(&r.totals))
            }
        }
    };
    page(
        &m,
        StatusCode::OK,
        layout::shell(&m, Nav::Usage, "Usage", content),
    )
}

/// Requests, valid and refused over the range, as three figures.
pub fn summary(r: &Report) -> Markup {
    let t = &r.totals;
    html! {
        dl class="usage-totals" {
            div { dt { "Requests" } dd data-usage="requests" { (t.requests) } }
            div { dt { "Valid" } dd class="ok-text" data-usage="valid" { (t.valid) } }
            div { dt { "Refused" } dd class="danger-text" data-usage="refused" { (t.refused()) } }
        }
    }
}

/// The verdicts counted, most frequent first.
pub fn codes(t: &Counts) -> Markup {
    let mut codes: Vec<(&String, &i64)> = t.by_code.iter().collect();
    codes.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    html! {
        @if codes.is_empty() {
            p class="muted" { "No verifications in this range." }
        } @else {
            table class="table compact usage-codes" {
                caption class="visually-hidden" { "Verifications by verdict code" }
                thead { tr { th scope="col" { "Verdict" } th scope="col" class="num" { "Requests" } } }
                tbody {
                    @for (code, n) in codes {
                        tr data-code=(code) {
                            td data-label="Verdict" { span class={ "swatch " (code_class(code)) } aria-hidden="true" {} " " code { (code) } }
                            td data-label="Requests" class="num" { (n) }
                        }
                    }
                }
            }
        }
    }
}

fn top_keys(r: &Report, now: Millis) -> Markup {
    let keys = r.keys.as_deref().unwrap_or_default();
    html! {
        @if keys.is_empty() {
            p class="muted" { "No key was used in this range." }
        } @else {
            div class="table-wrap" {
                table class="table compact usage-keys" {
                    caption class="visually-hidden" { "Keys with the most verifications in this range" }
                    thead { tr {
                        th scope="col" { "Key" } th scope="col" class="num" { "Requests" }
                        th scope="col" class="num" { "Valid" } th scope="col" class="num" { "Refused" }
                        th scope="col" { "Last used" }
                    } }
                    tbody {
                        @for k in keys {
                            tr {
                                td data-label="Key" { a href={ "/keys/" (k.key_id) } { code { (k.prefix) "••••" } } }
                                td data-label="Requests" class="num" { (k.requests) }
                                td data-label="Valid" class="num" { (k.valid) }
                                td data-label="Refused" class="num" { (k.requests - k.valid) }
                                td data-label="Last used" {
                                    @match k.last_used_at { Some(t) => (time_ago(now, t)), None => span class="muted" { "Never" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Colour class of a verdict: valid, refused by the key's state, by the request, or by limits.
fn code_class(code: &str) -> &'static str {
    match code {
        "VALID" => "c-valid",
        "RATE_LIMITED" | "QUOTA_EXCEEDED" => "c-limit",
        "MALFORMED" | "NOT_FOUND" => "c-unknown",
        _ => "c-refused",
    }
}

/// A bucket's label: `14:05` by minute, `14:00` by hour, `Nov 22` by day (UTC).
fn bucket_label(g: Granularity, t: Millis) -> String {
    let text = rfc3339(t);
    match g {
        Granularity::Minute | Granularity::Hour => text.get(11..16).unwrap_or_default().to_owned(),
        Granularity::Day => layout::date(t)
            .rsplit_once(',')
            .map_or_else(String::new, |(d, _)| d.to_owned()),
    }
}

/// Requests per bucket as stacked bars: valid below, refused above (by code, in the bar's
/// tooltip), scaled to the busiest bucket. The bars stretch to the width; the labels are text
/// beside them, so that they stay legible on a phone. The figures are in the tables too.
pub fn chart(r: &Report) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 160.0;
    let g = r.range.granularity;
    let n = r.series.len().max(1) as f64;
    let peak = r.series.iter().map(|(_, c)| c.requests).max().unwrap_or(0);
    let scale = if peak > 0 {
        (H - 4.0) / peak as f64
    } else {
        0.0
    };
    let slot = W / n;
    let bar = (slot * 0.8).max(1.0);
    let ticks: Vec<Millis> = match r.series.len() {
        0 => Vec::new(),
        len => vec![r.series[0].0, r.series[len / 2].0, r.series[len - 1].0],
    };
    let described = format!(
        "{} requests from {} to {} (UTC), {} valid and {} refused; the busiest {} had {}.",
        r.totals.requests,
        layout::date_time(r.range.from),
        layout::date_time(r.range.to),
        r.totals.valid,
        r.totals.refused(),
        g.as_str(),
        peak
    );
    html! {
        figure class="usage-chart" {
            p class="chart-peak muted small" { "Busiest " (g.as_str()) ": " (peak) " requests" }
            svg viewBox={ "0 0 " (W) " " (H) } role="img" aria-label=(described) preserveAspectRatio="none" {
                @for (i, (start, c)) in r.series.iter().enumerate() {
                    @let x = i as f64 * slot + (slot - bar) / 2.0;
                    @let valid_h = c.valid as f64 * scale;
                    @let refused_h = c.refused() as f64 * scale;
                    @if c.requests > 0 {
                        g class="bar" data-start=(rfc3339(*start)) {
                            title { (tooltip(g, *start, c)) }
                            @if c.valid > 0 {
                                rect class="c-valid" x=(fmt(x)) y=(fmt(H - valid_h)) width=(fmt(bar)) height=(fmt(valid_h)) {}
                            }
                            @if c.refused() > 0 {
                                rect class="c-refused" x=(fmt(x)) y=(fmt(H - valid_h - refused_h)) width=(fmt(bar)) height=(fmt(refused_h)) {}
                            }
                        }
                    }
                }
                line x1="0" y1=(H) x2=(W) y2=(H) class="axis" vector-effect="non-scaling-stroke" {}
            }
            div class="chart-ticks muted small" aria-hidden="true" {
                @for t in ticks { span { (bucket_label(g, t)) } }
            }
            figcaption class="legend" {
                span { span class="swatch c-valid" aria-hidden="true" {} " Valid" }
                span { span class="swatch c-refused" aria-hidden="true" {} " Refused" }
                span class="muted" { "Times in UTC; hover a bar for its verdicts." }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

fn tooltip(g: Granularity, start: Millis, c: &Counts) -> String {
    let mut text = format!(
        "{} ({}): {} requests, {} valid",
        layout::date_time(start),
        g.as_str(),
        c.requests,
        c.valid
    );
    for (code, n) in c.by_code.iter().filter(|(code, _)| *code != "VALID") {
        text.push_str(&format!(", {n} {code}"));
    }
    text
}

/// A key's usage on its page: the last 24 hours by hour.
pub fn key_section(r: &Report) -> Markup {
    html! {
        (summary(r))
        (chart(r))
        (codes(&r.totals))
    }
}

#[derive(Debug, Deserialize)]
struct LastUsedQuery {
    /// Key ids, comma-separated.
    ids: String,
}

#[derive(Debug, Serialize)]
struct LastUse {
    /// RFC 3339, for the `datetime` attribute.
    at: String,
    /// `3 minutes ago`.
    text: String,
    /// `Nov 22, 2025, 10:04 UTC`.
    title: String,
}

/// Most keys one refresh asks about: a page of the list.
const LAST_USED_MAX: usize = 100;

/// The last use of each key asked for (of the member's organization; others are left out), for
/// the keys list to refresh its column.
async fn last_used(
    State(state): State<Arc<AppState>>,
    m: Member,
    Query(q): Query<LastUsedQuery>,
) -> Response {
    let mut out: HashMap<String, Option<LastUse>> = HashMap::new();
    for id in q
        .ids
        .split(',')
        .filter(|s| !s.is_empty())
        .take(LAST_USED_MAX)
    {
        match keys::get_with_deleted(&state.ctx, &m.caller, id).await {
            Ok(k) => {
                out.insert(
                    k.id.clone(),
                    k.last_used_at.map(|t| LastUse {
                        at: rfc3339(t),
                        text: layout::relative(m.now, t),
                        title: layout::date_time(t),
                    }),
                );
            }
            Err(crate::service::ServiceError::NotFound(_)) => {}
            Err(e) => return error_page(Some(&m), e),
        }
    }
    Json(out).into_response()
}
