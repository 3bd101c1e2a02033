//! Sign-in, sign-out, and the one-time setup links (first start, invitations).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Input, bare, form_errors, input};
use super::{
    AnonymousForm, FLASH_COOKIE, FieldErrors, PRE_SESSION_CSRF_COOKIE, Submitted, clear_cookie,
    error_page, pre_session_csrf, set_cookie,
};
use crate::http::AppState;
use crate::http::auth::{client, cookie};
use crate::service::ServiceError;
use crate::service::sessions::{
    self, CompleteSetup, OpenSetupLink, Purpose, SESSION_COOKIE, SignInError, SignedIn,
};

pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/setup/{token}", get(setup_page).post(setup))
}

/// Where a request came from, as an extractor.
pub struct ClientInfo(pub sessions::Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientInfo(client(parts)))
    }
}

/// Only paths of this site: never `//host` or `/\host`, which browsers treat as other sites.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains(['\r', '\n']) =>
        {
            n.to_owned()
        }
        _ => "/keys".to_owned(),
    }
}

/// A response that opens a session: the session cookie set, the pre-session CSRF cookie dropped.
fn signed_in(state: &AppState, signed: &SignedIn, to: &str, notice: Option<&str>) -> Response {
    let mut res = Redirect::to(to).into_response();
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            signed.token.expose(),
            None,
            state.secure_cookies,
        ),
    );
    h.append(
        header::SET_COOKIE,
        clear_cookie(PRE_SESSION_CSRF_COOKIE, state.secure_cookies),
    );
    if let Some(n) = notice {
        h.append(
            header::SET_COOKIE,
            set_cookie(
                FLASH_COOKIE,
                &hex::encode(n),
                Some(60),
                state.secure_cookies,
            ),
        );
    }
    res
}

/// Sets the pre-session CSRF cookie when it is new.
fn with_csrf_cookie(mut res: Response, state: &AppState, csrf: &str, fresh: bool) -> Response {
    if fresh {
        res.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(PRE_SESSION_CSRF_COOKIE, csrf, None, state.secure_cookies),
        );
    }
    res
}

#[derive(Debug, Deserialize)]
struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

async fn sign_in_page(
    State(state): State<Arc<AppState>>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Query(q): Query<SignInQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        if let Ok(Some(_)) = sessions::authenticate(&state.ctx, token, &client).await {
            return Redirect::to(&next).into_response();
        }
    }
    let (csrf, fresh) = pre_session_csrf(&headers);
    let notice = q.signed_out.is_some().then_some("You have signed out.");
    let res = (StatusCode::OK, sign_in_form(&csrf, "", &next, None, notice)).into_response();
    with_csrf_cookie(res, &state, &csrf, fresh)
}

fn sign_in_form(
    csrf: &str,
    email: &str,
    next: &str,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    let none = FieldErrors::default();
    bare(
        "Sign in",
        html! {
            div class="card auth-card" {
                h1 { "Sign in" }
                p class="subtitle" { "Manage your organization's API keys." }
                @if let Some(n) = notice { div class="notice success" role="status" { (n) } }
                @if let Some(e) = error { div class="notice error" role="alert" id="sign-in-error" { (e) } }
                form method="post" action="/sign-in" class="stack" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="next" value=(next);
                    (input("email", "email", "Email", email, &none, Input {
                        kind: "email", autocomplete: Some("username"), required: true,
                        autofocus: email.is_empty(), ..Input::default() }))
                    (input("password", "password", "Password", "", &none, Input {
                        kind: "password", autocomplete: Some("current-password"), required: true,
                        autofocus: !email.is_empty(), ..Input::default() }))
                    button type="submit" class="btn primary block" { "Sign in" }
                }
                p class="hint" {
                    "First time here? Open the one-time setup link that " code { "keyward serve" }
                    " printed on its first start. Lost your password? Run "
                    code { "keyward setup-link --email you@example.com" } " on the server for a new link."
                }
            }
        },
    )
}

async fn sign_in(
    State(state): State<Arc<AppState>>,
    ClientInfo(client): ClientInfo,
    AnonymousForm { form }: AnonymousForm,
) -> Response {
    let next = safe_next(form.get("next"));
    let email = form.text("email").to_owned();
    let password = form.get("password").unwrap_or_default();
    match sessions::sign_in(&state.ctx, &email, password, &client).await {
        Ok(signed) => signed_in(&state, &signed, &next, None),
        Err(SignInError::Service(e)) => error_page(None, e),
        Err(e) => {
            let status = match e {
                SignInError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            let csrf = form.text("csrf").to_owned();
            let mut res = (
                status,
                sign_in_form(&csrf, &email, &next, Some(&e.to_string()), None),
            )
                .into_response();
            if let SignInError::Throttled { retry_after_s } = e {
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_str(&retry_after_s.to_string())
                        .expect("digits are a valid header value"),
                );
            }
            res
        }
    }
}

async fn sign_out(
    State(state): State<Arc<AppState>>,
    Submitted { member, .. }: Submitted,
) -> Response {
    if let Err(e) = sessions::sign_out(&state.ctx, &member.caller, &member.session).await {
        return error_page(Some(&member), e);
    }
    let mut res = Redirect::to("/sign-in?signed_out=1").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        clear_cookie(SESSION_COOKIE, state.secure_cookies),
    );
    res
}

fn expired_link() -> Response {
    super::plain_error(
        StatusCode::NOT_FOUND,
        "This link has expired or was already used",
        "Setup links work once, for a limited time. Sign in if you already set your password; \
         otherwise ask an admin for a new invitation, or run `keyward setup-link --email <your email>` \
         on the server.",
    )
}

async fn setup_page(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let link = match sessions::open_setup_link(&state.ctx, &token).await {
        Ok(Some(link)) => link,
        Ok(None) => return expired_link(),
        Err(e) => return error_page(None, e),
    };
    let (csrf, fresh) = pre_session_csrf(&headers);
    let org_name = org_name(&state, &link).await;
    let email = if link.user.email.ends_with("localhost") {
        ""
    } else {
        &link.user.email
    };
    let name = if link.user.name == "Owner" {
        ""
    } else {
        &link.user.name
    };
    let res = (
        StatusCode::OK,
        setup_form(
            &state,
            &csrf,
            &token,
            &link,
            &org_name,
            email,
            name,
            &FieldErrors::default(),
        ),
    )
        .into_response();
    with_csrf_cookie(res, &state, &csrf, fresh)
}

async fn org_name(state: &AppState, link: &OpenSetupLink) -> String {
    state
        .ctx
        .verifier
        .org(&link.user.org_id, state.ctx.now())
        .await
        .ok()
        .flatten()
        .map(|o| o.name.clone())
        .unwrap_or_default()
}

#[expect(
    clippy::too_many_arguments,
    reason = "the form's state, one value each"
)]
fn setup_form(
    state: &AppState,
    csrf: &str,
    token: &str,
    link: &OpenSetupLink,
    org_name: &str,
    email: &str,
    name: &str,
    errors: &FieldErrors,
) -> Markup {
    let now = state.ctx.now();
    let (title, intro) = match link.purpose {
        Purpose::Setup => (
            "Set up your account",
            html! {
                "You own " strong { (org_name) } ". Choose the email and password you will sign in with."
            },
        ),
        Purpose::Invite => (
            "Join your team",
            html! {
                "You were invited to " strong { (org_name) } " as " strong { (link.user.role.as_str()) }
                ". Choose a password for " strong { (link.user.email) } "."
            },
        ),
    };
    let shown = ["email", "name", "password", "password_confirmation"];
    bare(
        title,
        html! {
            div class="card auth-card" {
                h1 { (title) }
                p class="subtitle" { (intro) }
                (form_errors(&errors.others(&shown)))
                form method="post" action={ "/setup/" (token) } class="stack" novalidate {
                    input type="hidden" name="csrf" value=(csrf);
                    @if link.purpose == Purpose::Setup {
                        (input("email", "email", "Email", email, errors, Input {
                            kind: "email", autocomplete: Some("username"), required: true,
                            autofocus: true, ..Input::default() }))
                    }
                    (input("name", "name", "Your name", name, errors, Input {
                        hint: Some("Shown to your team."), autocomplete: Some("name"),
                        maxlength: Some(100), ..Input::default() }))
                    (input("password", "password", "Password", "", errors, Input {
                        kind: "password", autocomplete: Some("new-password"), required: true,
                        hint: Some("At least 10 characters. A passphrase of a few words works well."),
                        autofocus: link.purpose == Purpose::Invite, ..Input::default() }))
                    (input("password_confirmation", "password_confirmation", "Repeat the password", "",
                        errors, Input { kind: "password", autocomplete: Some("new-password"),
                        required: true, ..Input::default() }))
                    button type="submit" class="btn primary block" { "Save and sign in" }
                }
                p class="hint" {
                    "This link works once and expires " (layout::relative(now, link.expires_at)) "."
                }
            }
        },
    )
}

async fn setup(
    State(state): State<Arc<AppState>>,
    ClientInfo(client): ClientInfo,
    Path(token): Path<String>,
    AnonymousForm { form }: AnonymousForm,
) -> Response {
    let input = CompleteSetup {
        email: form.get("email").map(str::to_owned),
        name: form.get("name").map(str::to_owned),
        password: form.get("password").unwrap_or_default().to_owned(),
        password_confirmation: form
            .get("password_confirmation")
            .unwrap_or_default()
            .to_owned(),
    };
    match sessions::complete_setup(&state.ctx, &token, input, &client).await {
        Ok(signed) => signed_in(
            &state,
            &signed,
            "/keys",
            Some("Your password is set and you are signed in."),
        ),
        Err(ServiceError::Validation(errors)) => {
            let link = match sessions::open_setup_link(&state.ctx, &token).await {
                Ok(Some(link)) => link,
                Ok(None) => return expired_link(),
                Err(e) => return error_page(None, e),
            };
            let org_name = org_name(&state, &link).await;
            let errors = FieldErrors::from(errors);
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                setup_form(
                    &state,
                    form.text("csrf"),
                    &token,
                    &link,
                    &org_name,
                    form.text("email"),
                    form.text("name"),
                    &errors,
                ),
            )
                .into_response()
        }
        Err(ServiceError::NotFound(_)) => expired_link(),
        Err(e) => error_page(None, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_goes_to_this_site() {
        assert_eq!(safe_next(Some("/keys/key_1?x=1")), "/keys/key_1?x=1");
        assert_eq!(safe_next(Some("//evil.example")), "/keys");
        assert_eq!(safe_next(Some("/\\evil.example")), "/keys");
        assert_eq!(safe_next(Some("https://evil.example")), "/keys");
        assert_eq!(safe_next(None), "/keys");
    }
}
