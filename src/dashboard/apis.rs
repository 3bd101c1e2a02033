//! APIs: the services keys are issued for, with their key prefixes, token types, accepted headers
//! and scope catalogue.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use maud::html;

use super::layout::{self, Nav, page_header};
use super::{Member, error_page, page};
use crate::http::AppState;
use crate::service::apis;

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new().route("/apis", get(apis_page))
}

async fn apis_page(State(state): State<Arc<AppState>>, m: Member) -> Response {
    let mut list = match apis::list(&state.ctx, &m.caller).await {
        Ok(l) => l,
        Err(e) => return error_page(Some(&m), e),
    };
    // The organization's own APIs first, Keyward's management API last.
    list.sort_by_key(|a| a.is_management());
    let content = html! {
        (page_header("APIs", Some(html! {
            "The services your keys protect. Each has its own key prefix and scope catalogue. "
            @if m.can("apis:write") {
                "Change them with the " a href="/docs" { "/v1/apis" } " endpoints."
            }
        }), html! {}))
        @for a in &list {
            section class="card api-card" aria-labelledby={ "api-" (a.id) } {
                div class="card-header" {
                    h2 id={ "api-" (a.id) } {
                        (a.name)
                        @if a.is_management() { " " span class="badge neutral" { "built-in" } }
                    }
                    code class="muted" { (a.id) }
                }
                dl class="props" {
                    dt { "Slug" } dd { code { (a.slug) } }
                    dt { "Key prefixes" } dd {
                        "live " code { (a.prefix_live) } " · test " code { (a.prefix_test) }
                        div class="muted small" { "A key looks like " code { (a.prefix_live) "3f9a0c1e7b2d…" } " and is listed as " code { (a.prefix_live) "3f9a0c1e7b2d••••" } "." }
                    }
                    dt { "Token types" } dd {
                        ul class="chips" { @for t in &a.token_types { li class="chip" { (t) } } }
                    }
                    dt { "Accepted headers" } dd {
                        ul class="plain-list" {
                            li { code { "Authorization: Bearer <key>" } }
                            @if a.accept_x_api_key { li { code { "x-api-key: <key>" } } }
                        }
                    }
                    dt { "Default rate limit" } dd {
                        @match &a.default_rate_limit {
                            Some(rl) => { (rl.requests) " requests per " (rl.per_seconds) " s" },
                            None => span class="muted" { "None" },
                        }
                    }
                    @if let Some(u) = &a.upstream { dt { "Gateway upstream" } dd { code { (u) } } }
                }
                h3 { "Scopes" }
                @if a.scopes.is_empty() {
                    p class="muted" { "No scope catalogue: keys of this API carry no scopes." }
                } @else {
                    div class="table-wrap" {
                        table class="table compact" {
                            caption class="visually-hidden" { "Scopes of " (a.name) }
                            thead { tr { th scope="col" class="col-scope" { "Scope" } th scope="col" { "Description" } } }
                            tbody {
                                @for s in &a.scopes {
                                    tr { td data-label="Scope" { code { (s.name) } } td data-label="Description" { (s.description) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(
        &m,
        StatusCode::OK,
        layout::shell(&m, Nav::Apis, "APIs", content),
    )
}
