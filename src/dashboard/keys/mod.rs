//! Settings → API keys: the list with its filters, the create dialog, the one-time display of a
//! new key, and a key's page with its edit, rotate, revoke and delete dialogs. This file holds the
//! routes and what the list and a key's page both show.

mod bulk;
mod create;
mod detail;
mod dialogs;
mod fields;
mod list;

use std::sync::Arc;

use axum::routing::{get, post};
use maud::{Markup, html};

use super::Member;
use super::layout::{self, badge, time_date};
use crate::domain::model::{Api, Key, KeyStatus, Millis, User};
use crate::http::AppState;
use crate::service::authz::{self, KeyActions};
use crate::service::{ServiceError, users};
use create::create;
use detail::detail_page;
use dialogs::{delete, edit, revoke, rotate};
use list::list_page;

pub(super) use create::expiry_label;
pub(super) use fields::{parse_rate_limit, rate_limit_fields};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/keys", get(list_page).post(create))
        .route(
            "/keys/revoke",
            get(bulk::confirm_page).post(bulk::revoke_selected),
        )
        .route("/keys/{id}", get(detail_page))
        .route("/keys/{id}/edit", post(edit))
        .route("/keys/{id}/rotate", post(rotate))
        .route("/keys/{id}/revoke", post(revoke))
        .route("/keys/{id}/delete", post(delete))
}

/// A key expiring within this many days carries an "Expires soon" badge.
const EXPIRES_SOON_DAYS: i64 = 30;

/// What the member may do with `k`, as the service decides it, from the API and members the page
/// loaded anyway.
fn key_actions(m: &Member, k: &Key, api: Option<&Api>, members: &[User]) -> KeyActions {
    let owner = members.iter().find(|u| u.id == k.owner_id);
    authz::key_actions(&m.caller, k, api, owner, m.now)
}

fn masked(k: &Key) -> String {
    format!("{}••••", k.display_prefix())
}

/// A key's state and what needs attention about it, as badges: its status, then whether it was
/// exposed, stops soon after a rotation, or expires soon.
fn status_badges(k: &Key, now: Millis) -> Markup {
    let status = k.status(now);
    let (kind, label) = match status {
        KeyStatus::Active => ("success", "Active"),
        KeyStatus::Disabled => ("neutral", "Disabled"),
        KeyStatus::Expired => ("warning", "Expired"),
        KeyStatus::Revoked => ("danger", "Revoked"),
        KeyStatus::Deleted => ("neutral", "Deleted"),
    };
    let live = k.is_live(now);
    html! {
        @if live && k.exposed_at.is_some() {
            span class="badge danger" title="Its whole secret was seen in a URL: rotate it" { "Exposed" }
        }
        (badge(kind, label))
        @if live {
            @if let Some(t) = k.revoked_at {
                span class="badge warning" title="Rotated: this key stops working at the end of its grace period" {
                    "Stops " (layout::relative(now, t))
                }
            } @else if let Some(t) = k.expires_at.filter(|t| *t > now && *t - now <= EXPIRES_SOON_DAYS * 86_400_000) {
                span class="badge warning" title={ "Expires " (layout::date_time(t)) } { "Expires soon" }
            }
        }
    }
}

fn expiry_cell(k: &Key) -> Markup {
    html! {
        @match k.expires_at {
            None => span class="muted" { "Never" },
            Some(t) => (time_date(t)),
        }
    }
}

fn scope_chips(scopes: &[String]) -> Markup {
    html! {
        @if scopes.is_empty() {
            span class="muted" { "None" }
        } @else {
            ul class="chips" {
                @for s in scopes { li class="chip" { code { (s) } } }
            }
        }
    }
}

/// An eye icon.
fn eye() -> Markup {
    html! {
        svg class="icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" focusable="false" {
            path d="M12 5C6.5 5 2.7 9.2 1.5 12c1.2 2.8 5 7 10.5 7s9.3-4.2 10.5-7C21.3 9.2 17.5 5 12 5Zm0 11.5a4.5 4.5 0 1 1 0-9 4.5 4.5 0 0 1 0 9Zm0-2.2a2.3 2.3 0 1 0 0-4.6 2.3 2.3 0 0 0 0 4.6Z" fill="currentColor" {}
        }
    }
}

/// The organization's members, for owner names and the owner filter.
async fn members(state: &AppState, m: &Member) -> Result<Vec<User>, ServiceError> {
    users::list(&state.ctx, &m.caller).await
}
