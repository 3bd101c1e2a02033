//! Security events: what the detectors found, newest first, filtered by type and key, a page at a
//! time.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Nav, badge, page_header, time_ago};
use super::{Member, error_page, page};
use crate::domain::model::Millis;
use crate::domain::security::{EventType, SecurityEvent, Severity};
use crate::service::ServiceError;
use crate::store::EventFilter;

pub fn router() -> axum::Router<Arc<crate::http::AppState>> {
    axum::Router::new().route("/security-events", get(events_page))
}

const PAGE_SIZE: u32 = 25;

/// The badge of a severity: critical and high in red, medium in amber, low in grey.
fn severity_badge(s: Severity) -> Markup {
    let kind = match s {
        Severity::Critical | Severity::High => "danger",
        Severity::Medium => "warning",
        Severity::Low => "neutral",
    };
    badge(kind, s.as_str())
}

fn event_row(e: &SecurityEvent, now: Millis) -> Markup {
    html! {
        tr {
            td data-label="When" { (time_ago(now, e.created_at)) }
            td data-label="Severity" { (severity_badge(e.severity)) }
            td data-label="What" {
                span class="action" { (e.kind.label()) }
                " " code class="muted small" { (e.kind.as_str()) }
                div class="small" { (e.detail) }
            }
            td data-label="Key" {
                @match (&e.key_id, &e.prefix) {
                    (Some(id), Some(prefix)) => a href={ "/keys/" (id) } { code { (prefix) "••••" } },
                    (Some(id), None) => a href={ "/keys/" (id) } { code { (id) } },
                    _ => span class="muted" { "—" },
                }
            }
            td data-label="From" {
                @match &e.ip { Some(ip) => code { (ip) }, None => span class="muted" { "—" } }
            }
            td data-label="Count" class="num" { (e.count) }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct EventsQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    key: Option<String>,
    cursor: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn page_url(q: &EventsQuery, cursor: Option<&str>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    for (k, v) in [("type", &q.kind), ("key", &q.key)] {
        if let Some(v) = non_empty(v) {
            pairs.push((k, v));
        }
    }
    if let Some(c) = cursor {
        pairs.push(("cursor", c.to_owned()));
    }
    match serde_urlencoded::to_string(&pairs) {
        Ok(qs) if !qs.is_empty() => format!("/security-events?{qs}"),
        _ => "/security-events".to_owned(),
    }
}

async fn events_page(
    State(state): State<Arc<crate::http::AppState>>,
    m: Member,
    Query(q): Query<EventsQuery>,
) -> Response {
    let kind = non_empty(&q.kind).and_then(|k| EventType::parse(&k));
    let key = non_empty(&q.key);
    let filter = EventFilter {
        kind,
        key_id: key.clone(),
        limit: PAGE_SIZE + 1,
        cursor: q.cursor.as_deref().and_then(|c| c.parse().ok()),
    };
    let (mut events, unknown_key) = match crate::events::list(&state.ctx, &m.caller, &filter).await
    {
        Ok(e) => (e, false),
        Err(ServiceError::NotFound(_)) if key.is_some() => (Vec::new(), true),
        Err(e) => return error_page(Some(&m), e),
    };
    let next = if events.len() > PAGE_SIZE as usize {
        events.truncate(PAGE_SIZE as usize);
        events.last().map(|(seq, _)| seq.to_string())
    } else {
        None
    };
    let filtered = kind.is_some() || key.is_some();
    let content = html! {
        (page_header("Security events", Some(html! {
            "Refused keys, keys used from new networks, usage spikes, old keys used during their grace period, and keys seen in URLs. One burst is one event; its count grows while it lasts."
        }), html! {}))
        form class="filters" method="get" action="/security-events" role="search" aria-label="Filter security events" {
            div class="filter" {
                label for="events-type" { "Type" }
                select id="events-type" name="type" data-autosubmit {
                    option value="" selected[kind.is_none()] { "Any type" }
                    @for t in EventType::ALL {
                        option value=(t.as_str()) selected[kind == Some(t)] { (t.label()) }
                    }
                }
            }
            div class="filter" {
                label for="events-key" { "Key id" }
                input id="events-key" name="key" type="search" placeholder="key_…"
                    value=(key.as_deref().unwrap_or_default());
            }
            div class="filter filter-actions" {
                button type="submit" class="btn" { "Apply" }
                @if filtered { a class="btn ghost" href="/security-events" { "Clear" } }
            }
        }
        @if events.is_empty() {
            div class="card empty" {
                h2 { "No security events" }
                p {
                    @if unknown_key { "There is no key with this id in your organization." }
                    @else if filtered { "Nothing matches these filters." }
                    @else { "Nothing suspicious has been seen." }
                }
            }
        } @else {
            div class="table-wrap" {
                table class="table events-table" {
                    caption class="visually-hidden" { "Security events, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Severity" } th scope="col" { "What" }
                        th scope="col" { "Key" } th scope="col" { "From" } th scope="col" class="num" { "Count" }
                    } }
                    tbody { @for (_, e) in &events { (event_row(e, m.now)) } }
                }
            }
            nav class="pager" aria-label="Pages" {
                @if q.cursor.is_some() { a class="btn" href=(page_url(&q, None)) { "Newest" } }
                @if let Some(c) = &next { a class="btn" href=(page_url(&q, Some(c))) { "Older events" } }
            }
        }
    };
    page(
        &m,
        StatusCode::OK,
        layout::shell(&m, Nav::SecurityEvents, "Security events", content),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_links_keep_the_filters() {
        let q = EventsQuery {
            kind: Some("new_ip".into()),
            key: Some(" key_3f9a0c1e7b2d ".into()),
            cursor: Some("9".into()),
        };
        assert_eq!(
            page_url(&q, Some("7")),
            "/security-events?type=new_ip&key=key_3f9a0c1e7b2d&cursor=7"
        );
        assert_eq!(page_url(&EventsQuery::default(), None), "/security-events");
    }
}
