//! Dashboard sign-in storage: sessions, one-time setup links and failed sign-in attempts.
//!
//! Session and setup tokens are secrets: only their SHA-256 digests (hex) reach the database, so a
//! copy of it does not let anyone sign in.

use sqlx::any::AnyRow;
use sqlx::{AnyExecutor, Row};

use super::{Result, Store, StoreTx};
use crate::domain::model::Millis;

/// A signed-in dashboard session, found by the digest of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user_id: String,
    pub org_id: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    pub last_seen_at: Millis,
    /// The absolute end of the session, whatever its activity.
    pub expires_at: Millis,
}

/// A one-time link that lets a member set their password (first start, invitations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTokenRecord {
    pub user_id: String,
    pub org_id: String,
    /// `setup` (the first owner, who also chooses an email) or `invite`.
    pub purpose: String,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub used_at: Option<Millis>,
}

/// Failed sign-ins in a window: how many, and when the oldest of them happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    pub count: i64,
    pub oldest: Option<Millis>,
}

fn session_from_row(r: &AnyRow) -> Result<SessionRecord> {
    Ok(SessionRecord {
        user_id: r.try_get("user_id")?,
        org_id: r.try_get("org_id")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

fn failures_from_row(r: &AnyRow) -> Result<Failures> {
    Ok(Failures {
        count: r.try_get("n")?,
        oldest: r.try_get("oldest")?,
    })
}

impl Store {
    // ---------------------------------------------------------------- sessions

    pub async fn create_session(&self, token_hash: &str, s: &SessionRecord) -> Result<()> {
        create_session(&self.pool, token_hash, s).await
    }

    pub async fn get_session(&self, token_hash: &str) -> Result<Option<SessionRecord>> {
        let row = sqlx::query(
            "SELECT user_id, org_id, ip, user_agent, created_at, last_seen_at, expires_at \
             FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| session_from_row(&r)).transpose()
    }

    /// Records activity on a session (its idle timeout starts again).
    pub async fn touch_session(&self, token_hash: &str, at: Millis) -> Result<()> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(at)
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        delete_session(&self.pool, token_hash).await
    }

    /// Ends every session of a member (password set anew, member disabled).
    pub async fn delete_user_sessions(&self, user_id: &str) -> Result<()> {
        delete_user_sessions(&self.pool, user_id).await
    }

    /// Removes sessions that ended before `before`, whether by age or by idleness.
    pub async fn delete_stale_sessions(&self, now: Millis, idle_since: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now)
            .bind(idle_since)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    // ---------------------------------------------------------------- secrets shown once

    /// Keeps a sealed secret for the session `session_hash` to show once, until `expires_at`;
    /// forgets the ones whose time is up.
    pub async fn hold_secret(
        &self,
        session_hash: &str,
        key_id: &str,
        sealed: &str,
        expires_at: Millis,
        now: Millis,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM pending_secrets WHERE expires_at <= $1")
            .bind(now)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "INSERT INTO pending_secrets (session_hash, key_id, sealed, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_hash)
        .bind(key_id)
        .bind(sealed)
        .bind(expires_at)
        .execute(tx.conn())
        .await
        .map_err(|e| super::unique(e, "a secret held for this key"))?;
        tx.commit().await
    }

    /// Takes the sealed secret held for the session and key, if its time is not up: the first
    /// read removes it, so that it is shown once.
    pub async fn take_secret(
        &self,
        session_hash: &str,
        key_id: &str,
        now: Millis,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "DELETE FROM pending_secrets WHERE session_hash = $1 AND key_id = $2 \
             RETURNING sealed, expires_at",
        )
        .bind(session_hash)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires_at: Millis = row.try_get("expires_at")?;
        Ok((expires_at > now)
            .then(|| row.try_get("sealed"))
            .transpose()?)
    }

    // ---------------------------------------------------------------- setup links

    pub async fn create_setup_token(&self, token_hash: &str, t: &SetupTokenRecord) -> Result<()> {
        create_setup_token(&self.pool, token_hash, t).await
    }

    pub async fn get_setup_token(&self, token_hash: &str) -> Result<Option<SetupTokenRecord>> {
        let row = sqlx::query(
            "SELECT user_id, org_id, purpose, created_at, expires_at, used_at FROM setup_tokens \
             WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SetupTokenRecord {
                user_id: r.try_get("user_id")?,
                org_id: r.try_get("org_id")?,
                purpose: r.try_get("purpose")?,
                created_at: r.try_get("created_at")?,
                expires_at: r.try_get("expires_at")?,
                used_at: r.try_get("used_at")?,
            })
        })
        .transpose()
    }

    /// Marks a setup link used, if it still is unused and unexpired at `now`. Returns whether this
    /// call was the one that used it, so that two concurrent uses cannot both succeed.
    pub async fn use_setup_token(&self, token_hash: &str, now: Millis) -> Result<bool> {
        use_setup_token(&self.pool, token_hash, now).await
    }

    /// Voids the unused setup links of a member, when a new one replaces them.
    pub async fn void_setup_tokens(&self, user_id: &str, now: Millis) -> Result<()> {
        void_setup_tokens(&self.pool, user_id, now).await
    }

    // ---------------------------------------------------------------- failed sign-ins

    pub async fn record_sign_in_failure(
        &self,
        email: &str,
        ip: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        record_sign_in_failure(&self.pool, email, ip, at).await
    }

    /// Failed sign-ins for `email` since `since`.
    pub async fn sign_in_failures_for_email(&self, email: &str, since: Millis) -> Result<Failures> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sign_in_failures WHERE email = $1 AND at > $2",
        )
        .bind(email)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        failures_from_row(&row)
    }

    /// Failed sign-ins from `ip` since `since`, whatever the email.
    pub async fn sign_in_failures_from_ip(&self, ip: &str, since: Millis) -> Result<Failures> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM sign_in_failures WHERE ip = $1 AND at > $2",
        )
        .bind(ip)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        failures_from_row(&row)
    }

    /// Forgets the failures of `email` (after a successful sign-in) and every failure older than
    /// `before`.
    pub async fn clear_sign_in_failures(&self, email: &str, before: Millis) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE email = $1 OR at <= $2")
            .bind(email)
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl StoreTx {
    pub async fn create_session(&mut self, token_hash: &str, s: &SessionRecord) -> Result<()> {
        create_session(self.conn(), token_hash, s).await
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<()> {
        delete_session(self.conn(), token_hash).await
    }

    /// Ends every session of a member.
    pub async fn delete_user_sessions(&mut self, user_id: &str) -> Result<()> {
        delete_user_sessions(self.conn(), user_id).await
    }

    /// Ends every session of a member but `keep` (the digest of the one in use); returns how many
    /// ended.
    pub async fn delete_other_sessions(&mut self, user_id: &str, keep: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user_id)
            .bind(keep)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn create_setup_token(
        &mut self,
        token_hash: &str,
        t: &SetupTokenRecord,
    ) -> Result<()> {
        create_setup_token(self.conn(), token_hash, t).await
    }

    /// Marks a setup link used, if it still is unused and unexpired at `now`; returns whether
    /// this unit of work used it.
    pub async fn use_setup_token(&mut self, token_hash: &str, now: Millis) -> Result<bool> {
        use_setup_token(self.conn(), token_hash, now).await
    }

    /// Voids the unused setup links of a member.
    pub async fn void_setup_tokens(&mut self, user_id: &str, now: Millis) -> Result<()> {
        void_setup_tokens(self.conn(), user_id, now).await
    }

    pub async fn record_sign_in_failure(
        &mut self,
        email: &str,
        ip: Option<&str>,
        at: Millis,
    ) -> Result<()> {
        record_sign_in_failure(self.conn(), email, ip, at).await
    }
}

async fn create_session<'e>(
    db: impl AnyExecutor<'e>,
    token_hash: &str,
    s: &SessionRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, org_id, ip, user_agent, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token_hash)
    .bind(&s.user_id)
    .bind(&s.org_id)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .bind(s.created_at)
    .bind(s.last_seen_at)
    .bind(s.expires_at)
    .execute(db)
    .await
    .map_err(|e| super::unique(e, "a session with this token"))?;
    Ok(())
}

async fn delete_session<'e>(db: impl AnyExecutor<'e>, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db)
        .await?;
    Ok(())
}

async fn delete_user_sessions<'e>(db: impl AnyExecutor<'e>, user_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

async fn create_setup_token<'e>(
    db: impl AnyExecutor<'e>,
    token_hash: &str,
    t: &SetupTokenRecord,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO setup_tokens (token_hash, user_id, org_id, purpose, created_at, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(token_hash)
    .bind(&t.user_id)
    .bind(&t.org_id)
    .bind(&t.purpose)
    .bind(t.created_at)
    .bind(t.expires_at)
    .bind(t.used_at)
    .execute(db)
    .await
    .map_err(|e| super::unique(e, "a setup link with this token"))?;
    Ok(())
}

async fn use_setup_token<'e>(
    db: impl AnyExecutor<'e>,
    token_hash: &str,
    now: Millis,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE setup_tokens SET used_at = $1 \
         WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
    )
    .bind(now)
    .bind(token_hash)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

async fn void_setup_tokens<'e>(db: impl AnyExecutor<'e>, user_id: &str, now: Millis) -> Result<()> {
    sqlx::query("UPDATE setup_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

async fn record_sign_in_failure<'e>(
    db: impl AnyExecutor<'e>,
    email: &str,
    ip: Option<&str>,
    at: Millis,
) -> Result<()> {
    sqlx::query("INSERT INTO sign_in_failures (email, ip, at) VALUES ($1, $2, $3)")
        .bind(email)
        .bind(ip)
        .bind(at)
        .execute(db)
        .await?;
    Ok(())
}
