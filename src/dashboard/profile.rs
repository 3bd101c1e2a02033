//! The signed-in member's own profile: their name, and their password (with the current one).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::auth::ClientInfo;
use super::layout::{self, Input, Nav, csrf_field, form_errors, input, page_header};
use super::{FieldErrors, FormData, Member, Submitted, error_page, page, redirect_with_notice};
use crate::http::AppState;
use crate::service::sessions::{self, ChangePassword};
use crate::service::{ServiceError, users};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/profile", get(profile_page).post(rename))
        .route("/profile/password", post(change_password))
}

/// Which form a refused submission came from, with what was typed and what was wrong.
enum Refused<'a> {
    Name(&'a FormData, FieldErrors),
    Password(FieldErrors),
}

async fn profile_page(m: Member) -> Response {
    page(&m, StatusCode::OK, render(&m, None))
}

fn render(m: &Member, refused: Option<Refused<'_>>) -> Markup {
    let none = FieldErrors::default();
    let user = &m.caller.user;
    let (name, name_errors) = match &refused {
        Some(Refused::Name(f, e)) => (f.text("name").to_owned(), e),
        _ => (user.name.clone(), &none),
    };
    let password_errors = match &refused {
        Some(Refused::Password(e)) => e,
        _ => &none,
    };
    let content = html! {
        (page_header("Your profile", Some(html! { "How you appear to your team, and how you sign in." }), html! {}))
        div class="two-col" {
            section class="card" aria-labelledby="account-title" {
                h2 id="account-title" { "Account" }
                dl class="props" {
                    dt { "Email" } dd { (user.email) div class="muted small" { "You sign in with it. An admin can change it." } }
                    dt { "Role" } dd { (user.role.as_str()) }
                    dt { "Organization" } dd { (m.org.name) }
                }
                form method="post" action="/profile" class="stack profile-form" novalidate {
                    (csrf_field(m))
                    (form_errors(&name_errors.others(&["name"])))
                    (input("profile-name", "name", "Your name", &name, name_errors, Input {
                        required: true, maxlength: Some(100), autocomplete: Some("name"),
                        hint: Some("Shown to your team in the members list and the audit log."),
                        ..Input::default() }))
                    div class="form-actions" { button type="submit" class="btn primary" { "Save name" } }
                }
            }
            section class="card" aria-labelledby="password-title" {
                h2 id="password-title" { "Password" }
                p class="muted" { "Changing it signs you out everywhere else: your other browsers and devices." }
                form method="post" action="/profile/password" class="stack profile-form" novalidate {
                    (csrf_field(m))
                    input type="text" name="username" value=(user.email) autocomplete="username" hidden;
                    (form_errors(&password_errors.others(&["current_password", "new_password", "new_password_confirmation"])))
                    (input("current-password", "current_password", "Current password", "", password_errors, Input {
                        kind: "password", required: true, autocomplete: Some("current-password"), ..Input::default() }))
                    (input("new-password", "new_password", "New password", "", password_errors, Input {
                        kind: "password", required: true, autocomplete: Some("new-password"),
                        hint: Some("At least 10 characters. A passphrase of a few words works well."),
                        ..Input::default() }))
                    (input("new-password-confirmation", "new_password_confirmation", "Repeat the new password", "",
                        password_errors, Input { kind: "password", required: true,
                        autocomplete: Some("new-password"), ..Input::default() }))
                    div class="form-actions" { button type="submit" class="btn primary" { "Change password" } }
                }
            }
        }
    };
    layout::shell(m, Nav::Profile, "Your profile", content)
}

async fn rename(
    State(state): State<Arc<AppState>>,
    Submitted { member: m, form }: Submitted,
) -> Response {
    match users::rename_self(&state.ctx, &m.caller, form.text("name")).await {
        Ok(_) => redirect_with_notice(&m, "/profile", "Your name is saved."),
        Err(ServiceError::Validation(e)) => page(
            &m,
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&m, Some(Refused::Name(&form, e.into()))),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}

async fn change_password(
    State(state): State<Arc<AppState>>,
    ClientInfo(from): ClientInfo,
    Submitted { member: m, form }: Submitted,
) -> Response {
    let input = ChangePassword {
        current: form.get("current_password").unwrap_or_default().to_owned(),
        new: form.get("new_password").unwrap_or_default().to_owned(),
        confirmation: form
            .get("new_password_confirmation")
            .unwrap_or_default()
            .to_owned(),
    };
    match sessions::change_password(&state.ctx, &m.caller, &m.session, input, &from).await {
        Ok(ended) => {
            let others = match ended {
                0 => "You had no other sessions.".to_owned(),
                1 => "Your one other session has ended.".to_owned(),
                n => format!("Your {n} other sessions have ended."),
            };
            redirect_with_notice(
                &m,
                "/profile",
                &format!("Your password is changed. {others}"),
            )
        }
        Err(ServiceError::Validation(e)) => page(
            &m,
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&m, Some(Refused::Password(e.into()))),
        ),
        Err(e) => error_page(Some(&m), e),
    }
}
