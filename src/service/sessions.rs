//! Dashboard sign-in: server-side sessions, one-time setup links, and throttling of failed
//! sign-ins.
//!
//! Session and setup tokens are 32 random bytes (64 hex characters) given to the browser or
//! printed once; the database holds only their SHA-256 digests, and neither is ever logged. A
//! session's CSRF token is derived from its token (SHA-256 with a label), so it needs no storage
//! and only someone holding the session cookie can compute it.

use std::net::IpAddr;
use std::sync::Arc;

use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::audit::{self, Target};
use super::{Caller, Ctx, Result, ServiceError, Via, authz, passwords, users};
use crate::domain::key::SecretKey;
use crate::domain::model::{Actor, Millis, User, UserStatus};
use crate::domain::seal::Sealer;
use crate::domain::validate::{self, Errors};
use crate::store::{Failures, SessionRecord, SetupTokenRecord, StoreError, StoreTx};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "keyward_session";
/// Header that carries the CSRF token on state-changing JSON requests authenticated by cookie.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// A session ends after this long without a request.
pub const SESSION_IDLE_MS: Millis = 12 * 3600 * 1000;
/// A session ends this long after sign-in, whatever its activity.
pub const SESSION_MAX_MS: Millis = 7 * 24 * 3600 * 1000;
/// How long failed sign-ins count against an email or an address.
pub const THROTTLE_WINDOW_MS: Millis = 15 * 60 * 1000;
/// Failed sign-ins for one email within the window before further attempts are refused.
pub const MAX_FAILURES_PER_EMAIL: i64 = 5;
/// Failed sign-ins from one IP address within the window before further attempts are refused.
pub const MAX_FAILURES_PER_IP: i64 = 20;
/// Activity is written at most this often per session.
const TOUCH_EVERY_MS: Millis = 60 * 1000;

/// A secret token: a session's or a setup link's. `Debug` prints nothing.
pub struct Token(String);

impl Token {
    fn generate() -> Token {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Token(hex::encode(bytes))
    }

    /// The token itself, to put in a cookie or a link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Whether `token` has the shape of a generated token (so garbage never reaches the database).
fn well_formed(token: &str) -> bool {
    token.len() == 64
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The digest stored for a token: SHA-256, hex.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The CSRF token of a session: forms carry it in a hidden field, scripts in `X-CSRF-Token`.
pub fn csrf_token(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"keyward csrf v1\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compares two secrets in constant time.
pub fn secrets_match(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Where a request came from.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Client {
    fn ip_string(&self) -> Option<String> {
        self.ip.map(|ip| ip.to_string())
    }

    fn caller(&self, user: User) -> Caller {
        Caller {
            org_id: user.org_id.clone(),
            user: Arc::new(user),
            via: Via::Session,
            ip: self.ip,
            user_agent: self.user_agent.clone(),
        }
    }
}

/// A new session: the token for the cookie (shown to the browser only) and its member.
#[derive(Debug)]
pub struct SignedIn {
    pub token: Token,
    pub caller: Caller,
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Unknown email, wrong password, no password set, or a disabled member: one answer for all.
    #[error("The email or password is incorrect.")]
    Invalid,
    /// Too many failures for this email or from this address.
    #[error("Too many failed sign-ins. Try again in {} minute(s).", (.retry_after_s + 59) / 60)]
    Throttled { retry_after_s: i64 },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<StoreError> for SignInError {
    fn from(e: StoreError) -> Self {
        SignInError::Service(e.into())
    }
}

/// Emails are compared trimmed and lowercased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

fn seconds_until_clear(f: Failures, now: Millis) -> i64 {
    let until = f.oldest.unwrap_or(now) + THROTTLE_WINDOW_MS;
    ((until - now) + 999).div_euclid(1000).max(1)
}

/// Checks an email and password and opens a session. Refuses early, without checking the
/// password, once an email or an address has too many recent failures.
pub async fn sign_in(
    ctx: &Ctx,
    email: &str,
    password: &str,
    client: &Client,
) -> Result<SignedIn, SignInError> {
    let email = normalize_email(email);
    let now = ctx.now();
    let since = now - THROTTLE_WINDOW_MS;
    let ip = client.ip_string();
    let by_email = ctx.store.sign_in_failures_for_email(&email, since).await?;
    if by_email.count >= MAX_FAILURES_PER_EMAIL {
        return Err(SignInError::Throttled {
            retry_after_s: seconds_until_clear(by_email, now),
        });
    }
    if let Some(ip) = &ip {
        let by_ip = ctx.store.sign_in_failures_from_ip(ip, since).await?;
        if by_ip.count >= MAX_FAILURES_PER_IP {
            return Err(SignInError::Throttled {
                retry_after_s: seconds_until_clear(by_ip, now),
            });
        }
    }
    let found = ctx.store.get_user_by_email(&email).await?;
    // Hashing cost is bounded: an overlong password is checked against nothing.
    let stored = found.as_ref().and_then(|(_, h)| h.as_deref());
    let matches = if password.chars().count() <= passwords::MAX_LEN {
        passwords::verify(password, stored).await
    } else {
        passwords::verify("", None).await
    };
    let user = match found {
        Some((user, _)) if matches && user.status == UserStatus::Active => user,
        other => {
            let mut tx = ctx.store.begin().await?;
            tx.record_sign_in_failure(&email, ip.as_deref(), now)
                .await?;
            if let Some((user, hash)) = other {
                let reason = if user.status != UserStatus::Active {
                    "member not active"
                } else if hash.is_none() {
                    "no password set"
                } else {
                    "wrong password"
                };
                audit::record_as(
                    ctx,
                    &mut tx,
                    &user.org_id,
                    Actor {
                        kind: "user",
                        id: Some(user.id.clone()),
                        label: user.email.clone(),
                    },
                    ip,
                    client.user_agent.clone(),
                    "user.sign_in_failed",
                    Target {
                        kind: "user",
                        id: &user.id,
                        label: &user.email,
                    },
                    json!({ "reason": reason }),
                )
                .await?;
            }
            tx.commit().await?;
            return Err(SignInError::Invalid);
        }
    };
    ctx.store
        .clear_sign_in_failures(&email, now - THROTTLE_WINDOW_MS)
        .await?;
    Ok(open_session(ctx, user, client).await?)
}

/// Opens a session for `user` and records the sign-in.
async fn open_session(ctx: &Ctx, user: User, client: &Client) -> Result<SignedIn> {
    let now = ctx.now();
    ctx.store
        .delete_stale_sessions(now, now - SESSION_IDLE_MS)
        .await?;
    let mut tx = ctx.store.begin().await?;
    let signed_in = session_in(ctx, &mut tx, user, client).await?;
    tx.commit().await?;
    Ok(signed_in)
}

/// Writes a new session for `user`, and the sign-in event, to `tx`.
async fn session_in(ctx: &Ctx, tx: &mut StoreTx, user: User, client: &Client) -> Result<SignedIn> {
    let now = ctx.now();
    let token = Token::generate();
    tx.create_session(
        &digest(token.expose()),
        &SessionRecord {
            user_id: user.id.clone(),
            org_id: user.org_id.clone(),
            ip: client.ip_string(),
            user_agent: client
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(300).collect()),
            created_at: now,
            last_seen_at: now,
            expires_at: now + SESSION_MAX_MS,
        },
    )
    .await?;
    let caller = client.caller(user);
    let label = caller.user.email.clone();
    audit::record(
        ctx,
        tx,
        &caller,
        "user.signed_in",
        Target {
            kind: "user",
            id: &caller.user.id,
            label: &label,
        },
        json!({}),
    )
    .await?;
    Ok(SignedIn { token, caller })
}

/// The member a session token belongs to, if the session is still open and the member active.
pub async fn authenticate(ctx: &Ctx, token: &str, client: &Client) -> Result<Option<Caller>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let hash = digest(token);
    let Some(session) = ctx.store.get_session(&hash).await? else {
        return Ok(None);
    };
    let now = ctx.now();
    if session.expires_at <= now || session.last_seen_at + SESSION_IDLE_MS <= now {
        ctx.store.delete_session(&hash).await?;
        return Ok(None);
    }
    let user = ctx
        .store
        .get_user_in_org(&session.org_id, &session.user_id)
        .await?
        .filter(|u| u.status == UserStatus::Active && !u.is_service());
    let Some(user) = user else {
        ctx.store.delete_session(&hash).await?;
        return Ok(None);
    };
    if now - session.last_seen_at >= TOUCH_EVERY_MS {
        ctx.store.touch_session(&hash, now).await?;
    }
    Ok(Some(client.caller(user)))
}

/// Ends the session of `token` and records the sign-out.
pub async fn sign_out(ctx: &Ctx, caller: &Caller, token: &str) -> Result<()> {
    let mut tx = ctx.store.begin().await?;
    tx.delete_session(&digest(token)).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.signed_out",
        Target {
            kind: "user",
            id: &caller.user.id,
            label: &caller.user.email,
        },
        json!({}),
    )
    .await?;
    Ok(tx.commit().await?)
}

// -------------------------------------------------------------------- the profile

/// What the password form sends.
#[derive(Debug, Default)]
pub struct ChangePassword {
    pub current: String,
    pub new: String,
    pub confirmation: String,
}

/// Changes the signed-in member's own password, checking their current one first, and ends their
/// other sessions (the one in use, `session_token`, stays). Wrong current passwords count as
/// failed sign-ins, so that a session left open cannot be used to guess the password. Returns how
/// many other sessions ended.
pub async fn change_password(
    ctx: &Ctx,
    caller: &Caller,
    session_token: &str,
    input: ChangePassword,
    client: &Client,
) -> Result<u64> {
    if !authz::may_edit_own_profile(caller) {
        return Err(ServiceError::Forbidden(
            "Only the member signed in to the dashboard can change their password.".into(),
        ));
    }
    let now = ctx.now();
    let email = caller.user.email.clone();
    let failures = ctx
        .store
        .sign_in_failures_for_email(&email, now - THROTTLE_WINDOW_MS)
        .await?;
    if failures.count >= MAX_FAILURES_PER_EMAIL {
        let minutes = (seconds_until_clear(failures, now) + 59) / 60;
        return Err(ServiceError::Validation(vec![validate::FieldError {
            field: "current_password".into(),
            message: format!("too many wrong passwords; try again in {minutes} minute(s)"),
        }]));
    }
    let stored = ctx
        .store
        .get_user_by_email(&email)
        .await?
        .filter(|(u, _)| u.id == caller.user.id)
        .and_then(|(_, hash)| hash);
    let matches = input.current.chars().count() <= passwords::MAX_LEN
        && passwords::verify(&input.current, stored.as_deref()).await;
    if !matches {
        let mut tx = ctx.store.begin().await?;
        tx.record_sign_in_failure(&email, client.ip_string().as_deref(), now)
            .await?;
        audit::record(
            ctx,
            &mut tx,
            caller,
            "user.sign_in_failed",
            Target {
                kind: "user",
                id: &caller.user.id,
                label: &email,
            },
            json!({ "reason": "wrong current password when changing it" }),
        )
        .await?;
        tx.commit().await?;
        return Err(ServiceError::Validation(vec![validate::FieldError {
            field: "current_password".into(),
            message: "is not your current password".into(),
        }]));
    }
    let mut e = Errors::default();
    if let Err(ServiceError::Validation(errors)) = passwords::check_new("new_password", &input.new)
    {
        e.0.extend(errors);
    }
    if input.new != input.confirmation {
        e.add(
            "new_password_confirmation",
            "does not match the new password",
        );
    }
    e.finish(())?;
    let hash = passwords::hash(&input.new).await?;
    let keep = digest(session_token);
    let mut tx = ctx.store.begin().await?;
    tx.set_password(&caller.user.id, &hash).await?;
    let ended = tx.delete_other_sessions(&caller.user.id, &keep).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.password_changed",
        Target {
            kind: "user",
            id: &caller.user.id,
            label: &email,
        },
        json!({ "other_sessions_ended": ended }),
    )
    .await?;
    tx.commit().await?;
    Ok(ended)
}

// -------------------------------------------------------------------- secrets shown once

/// How long a new key's secret waits for the page that shows it.
pub const SECRET_HELD_MS: Millis = 10 * 60 * 1000;

/// The key that seals a secret held for a session: derived from the session's token, which only
/// the browser holds (the database has its SHA-256 digest, a different hash), so that what is
/// held opens only for the session it was made for.
fn session_sealer(session_token: &str) -> Sealer {
    let mut h = Sha256::new();
    h.update(b"keyward held secret v1\0");
    h.update(session_token.as_bytes());
    Sealer::new(&h.finalize().into())
}

/// Holds a new key's secret for the session `session_token`, so that the page the browser is
/// sent to next shows it, once (see [`take_secret`]).
pub async fn hold_secret(
    ctx: &Ctx,
    session_token: &str,
    key_id: &str,
    secret: &SecretKey,
) -> Result<()> {
    hold_text(ctx, session_token, key_id, secret.expose()).await
}

/// Holds any secret shown once (a key's, a webhook endpoint's signing secret) for the session,
/// under the id of what it belongs to.
pub async fn hold_text(ctx: &Ctx, session_token: &str, id: &str, secret: &str) -> Result<()> {
    let now = ctx.now();
    let sealed = session_sealer(session_token).seal(secret, id);
    ctx.store
        .hold_secret(
            &digest(session_token),
            id,
            &sealed,
            now + SECRET_HELD_MS,
            now,
        )
        .await?;
    Ok(())
}

/// The secret held for this session and key, once: afterwards, and for any other session, `None`.
pub async fn take_secret(
    ctx: &Ctx,
    session_token: &str,
    key_id: &str,
) -> Result<Option<SecretKey>> {
    Ok(take_text(ctx, session_token, key_id)
        .await?
        .and_then(|plain| {
            crate::domain::key::parse(&plain)
                .ok()
                .map(|p| SecretKey::from_parsed(&p))
        }))
}

/// What [`hold_text`] held for this session and id, once.
pub async fn take_text(ctx: &Ctx, session_token: &str, id: &str) -> Result<Option<String>> {
    let sealed = ctx
        .store
        .take_secret(&digest(session_token), id, ctx.now())
        .await?;
    Ok(sealed.and_then(|s| session_sealer(session_token).open(&s, id)))
}

// -------------------------------------------------------------------- setup links

/// Why a setup link was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The first owner of an organization: chooses an email and a password.
    Setup,
    /// An invited member: chooses a password (and name) for the email they were invited with.
    Invite,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Setup => "setup",
            Purpose::Invite => "invite",
        }
    }

    /// How long a link stays valid.
    pub fn ttl_ms(self) -> Millis {
        match self {
            Purpose::Setup => 24 * 3600 * 1000,
            Purpose::Invite => 7 * 24 * 3600 * 1000,
        }
    }

    /// The validity in words, for messages.
    pub fn ttl_text(self) -> &'static str {
        match self {
            Purpose::Setup => "24 hours",
            Purpose::Invite => "7 days",
        }
    }
}

/// The URL of a setup link under `public_url`.
pub fn setup_url(public_url: &str, token: &Token) -> String {
    format!(
        "{}/setup/{}",
        public_url.trim_end_matches('/'),
        token.expose()
    )
}

/// Makes a one-time link for `user` to set a password; earlier unused links of theirs stop
/// working.
pub async fn create_setup_link(ctx: &Ctx, user: &User, purpose: Purpose) -> Result<Token> {
    let mut tx = ctx.store.begin().await?;
    let token = setup_link_in(ctx, &mut tx, user, purpose).await?;
    tx.commit().await?;
    Ok(token)
}

/// [`create_setup_link`] in the unit of work `tx`.
pub(super) async fn setup_link_in(
    ctx: &Ctx,
    tx: &mut StoreTx,
    user: &User,
    purpose: Purpose,
) -> Result<Token> {
    if user.is_service() {
        return Err(ServiceError::Forbidden(
            "A service account never signs in: it has no password to set.".into(),
        ));
    }
    let now = ctx.now();
    tx.void_setup_tokens(&user.id, now).await?;
    let token = Token::generate();
    tx.create_setup_token(
        &digest(token.expose()),
        &SetupTokenRecord {
            user_id: user.id.clone(),
            org_id: user.org_id.clone(),
            purpose: purpose.as_str().to_owned(),
            created_at: now,
            expires_at: now + purpose.ttl_ms(),
            used_at: None,
        },
    )
    .await?;
    Ok(token)
}

/// Makes an invitation link for a member of the caller's organization (`users:write`), so that
/// they can choose a password; their earlier links stop working. Recorded in the audit log.
pub async fn invite(ctx: &Ctx, caller: &Caller, user_id: &str) -> Result<Token> {
    caller.require(authz::MANAGE_MEMBERS)?;
    let user = ctx
        .store
        .get_user_in_org(&caller.org_id, user_id)
        .await?
        .filter(authz::may_get_sign_in_link)
        .ok_or(ServiceError::NotFound("active member"))?;
    if !authz::may_manage_member(caller, &user) {
        return Err(ServiceError::Forbidden(
            "Only an owner can make a sign-in link for an owner.".into(),
        ));
    }
    let mut tx = ctx.store.begin().await?;
    let token = setup_link_in(ctx, &mut tx, &user, Purpose::Invite).await?;
    audit::record(
        ctx,
        &mut tx,
        caller,
        "user.invited",
        Target {
            kind: "user",
            id: &user.id,
            label: &user.email,
        },
        json!({ "expires_at": ctx.now() + Purpose::Invite.ttl_ms() }),
    )
    .await?;
    tx.commit().await?;
    Ok(token)
}

/// A setup link that can still be used, and its member.
#[derive(Debug, Clone)]
pub struct OpenSetupLink {
    pub purpose: Purpose,
    pub user: User,
    pub expires_at: Millis,
}

/// The setup link of `token`, if it is unused, unexpired, and its member still active.
pub async fn open_setup_link(ctx: &Ctx, token: &str) -> Result<Option<OpenSetupLink>> {
    if !well_formed(token) {
        return Ok(None);
    }
    let Some(record) = ctx.store.get_setup_token(&digest(token)).await? else {
        return Ok(None);
    };
    if record.used_at.is_some() || record.expires_at <= ctx.now() {
        return Ok(None);
    }
    let user = ctx
        .store
        .get_user_in_org(&record.org_id, &record.user_id)
        .await?
        .filter(|u| u.status == UserStatus::Active && !u.is_service());
    Ok(user.map(|user| OpenSetupLink {
        purpose: if record.purpose == "setup" {
            Purpose::Setup
        } else {
            Purpose::Invite
        },
        user,
        expires_at: record.expires_at,
    }))
}

/// What the setup form sends.
#[derive(Debug, Default)]
pub struct CompleteSetup {
    /// Only for [`Purpose::Setup`]; invited members keep the email they were invited with.
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: String,
    pub password_confirmation: String,
}

/// Uses a setup link: sets the member's password (and email and name), ends their other
/// sessions, and signs them in.
pub async fn complete_setup(
    ctx: &Ctx,
    token: &str,
    input: CompleteSetup,
    client: &Client,
) -> Result<SignedIn> {
    let link = open_setup_link(ctx, token)
        .await?
        .ok_or(ServiceError::NotFound("setup link"))?;
    let mut user = link.user;
    let mut e = Errors::default();
    if link.purpose == Purpose::Setup {
        let email = users::check_email(
            &mut e,
            "email",
            input.email.as_deref().unwrap_or_default().trim(),
        );
        if e.is_empty() {
            if let Some((other, _)) = ctx.store.get_user_by_email(&email).await? {
                if other.id != user.id {
                    e.add("email", "is already used by another member");
                }
            }
        }
        user.email = email;
    }
    if let Some(name) = input.name.as_deref().filter(|n| !n.trim().is_empty()) {
        user.name = validate::text(&mut e, "name", name, validate::NAME_MAX);
    }
    if let Err(ServiceError::Validation(errors)) = passwords::check_new("password", &input.password)
    {
        e.0.extend(errors);
    }
    if input.password != input.password_confirmation {
        e.add("password_confirmation", "does not match the password");
    }
    e.finish(())?;
    let hash = passwords::hash(&input.password).await?;
    let now = ctx.now();
    ctx.store
        .delete_stale_sessions(now, now - SESSION_IDLE_MS)
        .await?;
    // The member is read again under the organization's lock, so that a change of their role or
    // status made meanwhile stays instead of being written over with what was read above.
    let mut tx = ctx.store.begin_for_org(&user.org_id).await?;
    if !tx.use_setup_token(&digest(token), now).await? {
        return Err(ServiceError::NotFound("setup link"));
    }
    let mut member = tx
        .get_user_in_org(&user.org_id, &user.id)
        .await?
        .filter(|u| u.status == UserStatus::Active)
        .ok_or(ServiceError::NotFound("setup link"))?;
    member.email = user.email;
    member.name = user.name;
    let user = member;
    tx.update_user(&user).await.map_err(|e| match e {
        StoreError::Conflict(_) => ServiceError::Validation(vec![validate::FieldError {
            field: "email".into(),
            message: "is already used by another member".into(),
        }]),
        other => other.into(),
    })?;
    tx.set_password(&user.id, &hash).await?;
    tx.delete_user_sessions(&user.id).await?;
    let caller = client.caller(user.clone());
    audit::record(
        ctx,
        &mut tx,
        &caller,
        "user.password_set",
        Target {
            kind: "user",
            id: &user.id,
            label: &user.email,
        },
        json!({ "via": format!("{} link", link.purpose.as_str()) }),
    )
    .await?;
    let user_id = user.id.clone();
    let signed_in = session_in(ctx, &mut tx, user, client).await?;
    tx.commit().await?;
    ctx.verifier.invalidate_user(&user_id);
    Ok(signed_in)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_64_hex_characters_and_do_not_print() {
        let t = Token::generate();
        assert!(well_formed(t.expose()));
        assert!(!format!("{t:?}").contains(t.expose()));
        assert!(!well_formed("abc"));
        assert!(!well_formed(&"G".repeat(64)));
    }

    #[test]
    fn the_csrf_token_is_derived_from_the_session_and_is_not_its_digest() {
        let t = Token::generate();
        let csrf = csrf_token(t.expose());
        assert_eq!(csrf, csrf_token(t.expose()));
        assert_ne!(csrf, digest(t.expose()));
        assert_ne!(csrf, csrf_token(Token::generate().expose()));
        assert!(secrets_match(&csrf, &csrf_token(t.expose())));
        assert!(!secrets_match(&csrf, &csrf[1..]));
    }

    #[test]
    fn emails_are_compared_trimmed_and_lowercased() {
        assert_eq!(normalize_email("  Ana@Example.COM "), "ana@example.com");
    }

    #[test]
    fn throttled_sign_ins_say_when_to_retry() {
        let now = 1_000_000_000;
        let f = Failures {
            count: 5,
            oldest: Some(now - 60_000),
        };
        assert_eq!(seconds_until_clear(f, now), 14 * 60);
        let msg = SignInError::Throttled {
            retry_after_s: 14 * 60,
        }
        .to_string();
        assert!(msg.contains("14 minute"), "{msg}");
    }
}
