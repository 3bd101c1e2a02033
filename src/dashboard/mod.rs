//! The dashboard: server-rendered pages (maud) with a little vanilla JavaScript, served by
//! `keyward serve` itself. Handlers are thin adapters over the service layer, acting as the
//! signed-in member (`Caller` with `Via::Session`); they only hide what the services would
//! refuse, and the services refuse it anyway.
//!
//! Every page answers with `Cache-Control: no-store`, a strict Content-Security-Policy (no inline
//! script or style), `Referrer-Policy: no-referrer` (setup links carry a token) and
//! `X-Frame-Options: DENY`. Every form carries a CSRF token: the session's for signed-in pages,
//! a double-submit cookie's for the sign-in and setup forms.

mod access;
mod apis;
mod assets;
mod audit;
mod auth;
mod events;
mod gateway;
mod keys;
mod layout;
mod members;
mod org;
mod profile;
mod scopes;
mod usage;
mod webhooks;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::Markup;

use crate::domain::model::{Millis, Org};
use crate::http::AppState;
use crate::http::auth::{client, cookie};
use crate::service::authz::{self, OrgActions};
use crate::service::sessions::{self, SESSION_COOKIE};
use crate::service::{Caller, ServiceError};

/// Cookie of the CSRF token that protects the forms shown before sign-in (double submit).
const PRE_SESSION_CSRF_COOKIE: &str = "keyward_csrf";
/// Cookie of a one-line notice shown on the next page ("Key deleted.").
const FLASH_COOKIE: &str = "keyward_flash";

/// The dashboard's routes.
pub fn router() -> axum::Router<Arc<AppState>> {
    axum::Router::new()
        .route("/", get(home))
        .merge(auth::router())
        .merge(keys::router())
        .merge(audit::router())
        .merge(events::router())
        .merge(members::router())
        .merge(org::router())
        .merge(apis::router())
        .merge(access::router())
        .merge(profile::router())
        .merge(usage::router())
        .merge(webhooks::router())
        .layer(middleware::map_response(page_headers))
        .merge(assets::router())
}

async fn home(_member: Member) -> Redirect {
    Redirect::to("/keys")
}

async fn page_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/, Secure over TLS.
fn set_cookie(name: &str, value: &str, max_age_s: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_s {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are hex")
}

fn clear_cookie(name: &str, secure: bool) -> HeaderValue {
    set_cookie(name, "", Some(0), secure)
}

/// A signed-in member, with what every page shows: the organization, the CSRF token, and a
/// notice left by the previous action. Pages that take it redirect to sign-in without a session.
pub struct Member {
    pub caller: Caller,
    /// What the service lets the member do beyond any one key or member, to offer only that.
    pub actions: OrgActions,
    pub org: Arc<Org>,
    /// The session's CSRF token, for forms and scripts.
    pub csrf: String,
    /// The session token, to end the session on sign-out.
    session: String,
    /// A notice to show once, and whether the flash cookie must be cleared.
    pub flash: Option<String>,
    pub now: Millis,
    /// Whether the server can encrypt secrets (`KEYWARD_ENCRYPTION_KEY`), which some options need.
    pub can_encrypt: bool,
    secure: bool,
}

impl FromRequestParts<Arc<AppState>> for Member {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned);
        let caller = match &token {
            Some(t) => sessions::authenticate(&state.ctx, t, &client(parts))
                .await
                .map_err(|e| error_page(None, e))?,
            None => None,
        };
        let (Some(caller), Some(session)) = (caller, token) else {
            return Err(to_sign_in(parts, state.secure_cookies));
        };
        let now = state.ctx.now();
        let org = state
            .ctx
            .verifier
            .org(&caller.org_id, now)
            .await
            .map_err(|e| error_page(None, ServiceError::from(e)))?
            .ok_or_else(|| error_page(None, ServiceError::NotFound("organization")))?;
        let flash = cookie(&parts.headers, FLASH_COOKIE)
            .and_then(|v| hex::decode(v).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .filter(|s| !s.is_empty());
        Ok(Member {
            csrf: sessions::csrf_token(&session),
            actions: authz::org_actions(&caller),
            caller,
            org,
            session,
            flash,
            now,
            can_encrypt: state.ctx.sealer.is_some(),
            secure: state.secure_cookies,
        })
    }
}

/// Without a session: to the sign-in page, coming back here afterwards (for pages, not forms).
fn to_sign_in(parts: &Parts, secure: bool) -> Response {
    let target = match parts.uri.path_and_query() {
        Some(pq) if parts.method == axum::http::Method::GET && pq.path() != "/" => {
            format!("/sign-in?next={}", urlencode(pq.as_str()))
        }
        _ => "/sign-in".to_owned(),
    };
    let mut res = Redirect::to(&target).into_response();
    if cookie(&parts.headers, SESSION_COOKIE).is_some() {
        res.headers_mut()
            .append(header::SET_COOKIE, clear_cookie(SESSION_COOKIE, secure));
    }
    res
}

/// Percent-encodes a query value.
pub(crate) fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q[2..].to_owned())
        .unwrap_or_default()
}

/// A submitted `application/x-www-form-urlencoded` body: every pair, in order (checkboxes repeat
/// their name).
#[derive(Debug, Default, Clone)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    fn parse(bytes: &[u8]) -> FormData {
        FormData(serde_urlencoded::from_bytes(bytes).unwrap_or_default())
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, or `""`.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or_default()
    }

    /// The value of `name` trimmed, `None` when absent or blank.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        Some(self.text(name))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

async fn read_form(body: Body) -> Result<FormData, Response> {
    let bytes = axum::body::to_bytes(body, crate::http::BODY_LIMIT)
        .await
        .map_err(|_| {
            plain_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large.",
                "Shorten what you entered and try again.",
            )
        })?;
    Ok(FormData::parse(&bytes))
}

/// A form posted by a signed-in member, its CSRF token checked.
pub struct Submitted {
    pub member: Member,
    pub form: FormData,
}

impl FromRequest<Arc<AppState>> for Submitted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let member = Member::from_request_parts(&mut parts, state).await?;
        let form = read_form(body).await?;
        if !sessions::secrets_match(form.text("csrf"), &member.csrf) {
            return Err(csrf_refused());
        }
        Ok(Submitted { member, form })
    }
}

/// A form posted before sign-in (sign-in, setup link), its double-submit CSRF token checked.
pub struct AnonymousForm {
    pub form: FormData,
}

impl FromRequest<Arc<AppState>> for AnonymousForm {
    type Rejection = Response;

    async fn from_request(req: Request, _state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let expected = cookie(&parts.headers, PRE_SESSION_CSRF_COOKIE).unwrap_or_default();
        let form = read_form(body).await?;
        if expected.len() != 64 || !sessions::secrets_match(form.text("csrf"), expected) {
            return Err(csrf_refused());
        }
        Ok(AnonymousForm { form })
    }
}

fn csrf_refused() -> Response {
    plain_error(
        StatusCode::FORBIDDEN,
        "This form has expired.",
        "For your security, forms only work from the page that showed them. Go back, reload the page and try again.",
    )
}

/// The CSRF token for pre-session forms: the existing cookie's, or a new one to set.
fn pre_session_csrf(parts_headers: &axum::http::HeaderMap) -> (String, bool) {
    match cookie(parts_headers, PRE_SESSION_CSRF_COOKIE) {
        Some(v) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (v.to_owned(), false)
        }
        _ => {
            let mut bytes = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
            (hex::encode(bytes), true)
        }
    }
}

/// A page for a member: clears the notice it showed.
fn page(member: &Member, status: StatusCode, markup: Markup) -> Response {
    let mut res = (status, markup).into_response();
    if member.flash.is_some() {
        res.headers_mut().append(
            header::SET_COOKIE,
            clear_cookie(FLASH_COOKIE, member.secure),
        );
    }
    res
}

/// A 303 to `to`, leaving `notice` for the next page.
fn redirect_with_notice(member: &Member, to: &str, notice: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(FLASH_COOKIE, &hex::encode(notice), Some(60), member.secure),
    );
    res
}

/// A page for an error the member cannot fix in a form.
fn error_page(member: Option<&Member>, e: ServiceError) -> Response {
    let (status, title, detail) = match e {
        ServiceError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            format!("No such {what}"),
            format!("This {what} does not exist in your organization, or it was deleted."),
        ),
        ServiceError::Forbidden(d) => (
            StatusCode::FORBIDDEN,
            "Not allowed".to_owned(),
            format!("{d} Ask an admin of your organization if you need it."),
        ),
        e @ ServiceError::MissingScope { .. } => (
            StatusCode::FORBIDDEN,
            "Not allowed".to_owned(),
            format!("{e} Ask an admin of your organization if you need it."),
        ),
        ServiceError::Conflict(d) => (
            StatusCode::CONFLICT,
            "This change was not made".to_owned(),
            format!("{d} Nothing was changed; go back and try another way."),
        ),
        ServiceError::Validation(errors) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid input".to_owned(),
            errors
                .iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ServiceError::Store(s) => {
            let id = crate::http::error::request_id();
            tracing::error!(request_id = %id, cause = %s, "dashboard: internal error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong".to_owned(),
                format!(
                    "Something went wrong on our side. Quote the request id {id} if you report it."
                ),
            )
        }
    };
    match member {
        Some(m) => page(m, status, layout::error(m, status, &title, &detail)),
        None => plain_error(status, &title, &detail),
    }
}

/// The page for an address the dashboard does not have (the JSON API answers problem+json for
/// its own): inside the shell for a signed-in member, with the way back.
pub async fn not_found(state: &Arc<AppState>, parts: &mut Parts) -> Response {
    let title = "Page not found";
    let detail = "There is nothing at this address. It may have been mistyped, or what it showed was deleted.";
    missing_page(state, parts, StatusCode::NOT_FOUND, title, detail).await
}

/// A form's address opened as a page (a bookmark, a reload of an old answer): what it does needs
/// the form.
pub async fn method_not_allowed(state: &Arc<AppState>, parts: &mut Parts) -> Response {
    let title = "This address takes a form";
    let detail = "It does something only when a form of the dashboard sends it; opened as a page, it shows nothing. Go back to the page the form was on.";
    missing_page(state, parts, StatusCode::METHOD_NOT_ALLOWED, title, detail).await
}

async fn missing_page(
    state: &Arc<AppState>,
    parts: &mut Parts,
    status: StatusCode,
    title: &str,
    detail: &str,
) -> Response {
    let res = match Member::from_request_parts(parts, state).await {
        Ok(m) => page(&m, status, layout::not_found(&m, status, title, detail)),
        Err(_) => (status, layout::bare_not_found(status, title, detail)).into_response(),
    };
    // The fallback answers outside the dashboard's router, whose layer adds the pages' headers.
    page_headers(res).await
}

fn plain_error(status: StatusCode, title: &str, detail: &str) -> Response {
    (status, layout::bare_error(status, title, detail)).into_response()
}

/// Field errors of a form, by form field; `ip_allowlist[2]` belongs to `ip_allowlist`.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push((field.into(), message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages of `field` (and of its elements and members), joined; an element's message
    /// says which entry (a line of a list typed one a line) it is about, since messages never
    /// repeat what was typed.
    pub fn of(&self, field: &str) -> Option<String> {
        let found: Vec<String> = self
            .0
            .iter()
            .filter_map(|(f, m)| {
                let rest = f.strip_prefix(field)?;
                if rest.is_empty() || rest.starts_with('.') {
                    return Some(m.clone());
                }
                let index = rest.strip_prefix('[')?.split(']').next()?;
                Some(match index.parse::<usize>() {
                    Ok(i) => format!("entry {}: {m}", i + 1),
                    Err(_) => m.clone(),
                })
            })
            .collect();
        (!found.is_empty()).then(|| capitalize(&found.join("; ")))
    }

    /// The messages of `field` itself, not of its elements or members, joined.
    pub fn exactly(&self, field: &str) -> Option<String> {
        let found: Vec<&str> = self
            .0
            .iter()
            .filter(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
            .collect();
        (!found.is_empty()).then(|| capitalize(&found.join("; ")))
    }

    /// Messages of fields that no form control shows, for the top of the form.
    pub fn others(&self, shown: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(f, _)| {
                !shown.iter().any(|s| {
                    f == s
                        || f.strip_prefix(s)
                            .is_some_and(|r| r.starts_with('[') || r.starts_with('.'))
                })
            })
            .map(|(f, m)| {
                if f == "form" {
                    m.clone()
                } else {
                    format!("{f}: {m}")
                }
            })
            .collect()
    }
}

impl From<Vec<crate::domain::validate::FieldError>> for FieldErrors {
    fn from(errors: Vec<crate::domain::validate::FieldError>) -> Self {
        FieldErrors(errors.into_iter().map(|e| (e.field, e.message)).collect())
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_group_elements_under_their_field() {
        let e: FieldErrors = vec![
            crate::domain::validate::FieldError {
                field: "ip_allowlist[2]".into(),
                message: "must be an IPv4 or IPv6 address".into(),
            },
            crate::domain::validate::FieldError {
                field: "rate_limit.requests".into(),
                message: "must be between 1 and 1000000".into(),
            },
            crate::domain::validate::FieldError {
                field: "metadata".into(),
                message: "too big".into(),
            },
        ]
        .into();
        assert_eq!(
            e.of("ip_allowlist").unwrap(),
            "Entry 3: must be an IPv4 or IPv6 address",
            "which line of the list, since the message does not repeat it"
        );
        assert_eq!(e.of("rate_limit").unwrap(), "Must be between 1 and 1000000");
        assert_eq!(e.of("ip"), None);
        assert_eq!(
            e.others(&["ip_allowlist", "rate_limit"]),
            ["metadata: too big"]
        );
    }

    #[test]
    fn forms_keep_repeated_names() {
        let f = FormData::parse(b"name=+Prod+&scopes=a%3Ab&scopes=c&empty=");
        assert_eq!(f.text("name"), "Prod");
        assert_eq!(f.all("scopes"), ["a:b", "c"]);
        assert_eq!(f.non_empty("empty"), None);
        assert!(f.has("empty"));
    }

    #[test]
    fn cookies_are_strict_http_only_and_secure_over_tls() {
        let c = set_cookie("a", "b", Some(60), true);
        assert_eq!(
            c.to_str().unwrap(),
            "a=b; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(
            !set_cookie("a", "b", None, false)
                .to_str()
                .unwrap()
                .contains("Secure")
        );
    }
}
