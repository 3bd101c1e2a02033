//! Webhook endpoints, the durable queue of their messages, each attempt, and the notices already
//! raised for a key (expiry thresholds, quota crossings).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::keys::{KEY_COLUMNS, key_from_row};
use super::{Backend, Result, Store, StoreTx, corrupt, from_json, to_json};
use crate::domain::model::{Key, Millis};
use crate::webhooks::model::{Attempt, Claimed, Message, MessageStatus, Outcome, Webhook};

const WEBHOOK_COLUMNS: &str = "id, org_id, url, events, description, enabled, secret_sealed, \
     secret_pepper_version, created_at, updated_at";

const MESSAGE_COLUMNS: &str = "id, webhook_id, org_id, event, payload, status, attempts, \
     schedule_base, next_attempt_at, response_status, last_error, created_at, delivered_at";

/// How many attempts of one message the delivery log keeps (the oldest go first).
pub const ATTEMPTS_KEPT: i64 = 20;

/// A quota notice's state for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaNotices {
    /// The amount the 10% threshold is taken of, when known from the key's creation.
    pub base: Option<i64>,
    pub low_sent: bool,
    pub exhausted_sent: bool,
}

impl Store {
    /// The organization's endpoints, oldest first.
    pub async fn list_webhooks(&self, org_id: &str) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn get_webhook(&self, org_id: &str, id: &str) -> Result<Option<Webhook>> {
        let row = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1 AND org_id = $2"
        ))
        .bind(id)
        .bind(org_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(webhook_from_row).transpose()
    }

    /// The endpoint's messages, newest first, at most `limit`.
    pub async fn list_messages(&self, webhook_id: &str, limit: i64) -> Result<Vec<Message>> {
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE webhook_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(message_from_row).collect()
    }

    /// The attempts at delivering a message, in order.
    pub async fn list_attempts(&self, message_id: &str) -> Result<Vec<Attempt>> {
        let rows = sqlx::query(
            "SELECT message_id, attempt, at, duration_ms, response_status, error, response_excerpt \
             FROM webhook_attempts WHERE message_id = $1 ORDER BY attempt",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Attempt {
                    message_id: r.try_get("message_id")?,
                    attempt: r.try_get("attempt")?,
                    at: r.try_get("at")?,
                    duration_ms: r.try_get("duration_ms")?,
                    response_status: r.try_get("response_status")?,
                    error: r.try_get("error")?,
                    response_excerpt: r.try_get("response_excerpt")?,
                })
            })
            .collect()
    }

    /// Messages waiting for an attempt, in every organization.
    pub async fn count_pending_messages(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_messages WHERE status = 'pending'")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Claims up to `limit` messages due at `now` that no worker holds, leasing them until
    /// `lease_until` under `token`: an atomic update, so two workers (two processes on one
    /// PostgreSQL) never claim one message together; on PostgreSQL the rows another worker is
    /// claiming are skipped rather than waited for.
    pub async fn claim_due_messages(
        &self,
        now: Millis,
        lease_until: Millis,
        token: &str,
        limit: i64,
    ) -> Result<Vec<(Claimed, Webhook)>> {
        // A read first: most polls find nothing due, and need no write lock (SQLite has one).
        let due = sqlx::query(
            "SELECT id FROM webhook_messages WHERE status = 'pending' AND next_attempt_at <= $1 \
             AND (locked_until IS NULL OR locked_until <= $1) LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let skip_locked = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&format!(
            "UPDATE webhook_messages SET locked_until = $1, lease_token = $2 WHERE id IN (\
               SELECT id FROM webhook_messages WHERE status = 'pending' AND next_attempt_at <= $3 \
               AND (locked_until IS NULL OR locked_until <= $3) \
               ORDER BY next_attempt_at, id LIMIT $4{skip_locked}) \
             RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(lease_until)
        .bind(token)
        .bind(now)
        .bind(limit)
        .fetch_all(tx.conn())
        .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let message = message_from_row(row)?;
            let hook = sqlx::query(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = $1"
            ))
            .bind(&message.webhook_id)
            .fetch_optional(tx.conn())
            .await?;
            if let Some(hook) = hook {
                claimed.push((
                    Claimed {
                        message,
                        lease_token: token.to_owned(),
                    },
                    webhook_from_row(&hook)?,
                ));
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records an attempt and the message's new state, if the lease is still this worker's.
    /// `false`: the lease was lost (expired and claimed again); nothing is written.
    pub async fn finish_attempt(&self, claimed: &Claimed, outcome: &Outcome) -> Result<bool> {
        let mut tx = self.begin().await?;
        let status = if outcome.delivered {
            MessageStatus::Delivered
        } else if outcome.next_attempt_at.is_some() {
            MessageStatus::Pending
        } else {
            MessageStatus::Failed
        };
        let a = &outcome.attempt;
        let done = sqlx::query(
            "UPDATE webhook_messages SET status = $1, attempts = attempts + 1, next_attempt_at = $2, \
             response_status = $3, last_error = $4, delivered_at = $5, locked_until = NULL, \
             lease_token = NULL WHERE id = $6 AND lease_token = $7 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(outcome.next_attempt_at)
        .bind(a.response_status)
        .bind(&a.error)
        .bind(outcome.delivered.then_some(a.at))
        .bind(&a.message_id)
        .bind(&claimed.lease_token)
        .execute(tx.conn())
        .await?
        .rows_affected()
            == 1;
        if !done {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts \
             (message_id, attempt, at, duration_ms, response_status, error, response_excerpt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.message_id)
        .bind(a.attempt)
        .bind(a.at)
        .bind(a.duration_ms)
        .bind(a.response_status)
        .bind(&a.error)
        .bind(&a.response_excerpt)
        .execute(tx.conn())
        .await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE message_id = $1 AND attempt <= $2")
            .bind(&a.message_id)
            .bind(a.attempt - ATTEMPTS_KEPT)
            .execute(tx.conn())
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Keys of organizations with an enabled endpoint that are live (neither revoked nor deleted)
    /// and expire between `from` and `until`.
    pub async fn keys_expiring_between(&self, from: Millis, until: Millis) -> Result<Vec<Key>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE expires_at IS NOT NULL \
             AND expires_at > $1 AND expires_at <= $2 AND deleted_at IS NULL \
             AND (revoked_at IS NULL OR revoked_at > expires_at) \
             AND org_id IN (SELECT org_id FROM webhooks WHERE enabled = 1) \
             ORDER BY expires_at, id"
        ))
        .bind(from)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }
}

impl StoreTx {
    /// The organization's endpoints, as this unit of work sees them.
    pub async fn count_webhooks(&mut self, org_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE org_id = $1")
            .bind(org_id)
            .fetch_one(self.conn())
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn create_webhook(&mut self, w: &Webhook) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&w.id)
        .bind(&w.org_id)
        .bind(&w.url)
        .bind(to_json(&w.events))
        .bind(&w.description)
        .bind(i64::from(w.enabled))
        .bind(&w.secret_sealed)
        .bind(w.secret_pepper_version)
        .bind(w.created_at)
        .bind(w.updated_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Writes an endpoint's editable fields; `false` when it no longer exists.
    pub async fn update_webhook(&mut self, w: &Webhook) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE webhooks SET url = $1, events = $2, description = $3, enabled = $4, \
             updated_at = $5 WHERE id = $6 AND org_id = $7",
        )
        .bind(&w.url)
        .bind(to_json(&w.events))
        .bind(&w.description)
        .bind(i64::from(w.enabled))
        .bind(w.updated_at)
        .bind(&w.id)
        .bind(&w.org_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Deletes an endpoint with its messages and their attempts; `false` when it did not exist.
    pub async fn delete_webhook(&mut self, org_id: &str, id: &str) -> Result<bool> {
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE message_id IN \
             (SELECT id FROM webhook_messages WHERE webhook_id = $1 AND org_id = $2)",
        )
        .bind(id)
        .bind(org_id)
        .execute(self.conn())
        .await?;
        sqlx::query("DELETE FROM webhook_messages WHERE webhook_id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(self.conn())
            .await?;
        let n = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND org_id = $2")
            .bind(id)
            .bind(org_id)
            .execute(self.conn())
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// The organization's enabled endpoints, as this unit of work sees them.
    pub async fn enabled_webhooks(&mut self, org_id: &str) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = $1 AND enabled = 1 \
             ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn insert_message(&mut self, m: &Message) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO webhook_messages ({MESSAGE_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(&m.id)
        .bind(&m.webhook_id)
        .bind(&m.org_id)
        .bind(&m.event)
        .bind(&m.payload)
        .bind(m.status.as_str())
        .bind(m.attempts)
        .bind(m.schedule_base)
        .bind(m.next_attempt_at)
        .bind(m.response_status)
        .bind(&m.last_error)
        .bind(m.created_at)
        .bind(m.delivered_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Queues a message of the endpoint again, due at `now`, with a schedule of its own. `None`
    /// when the endpoint has no such message.
    pub async fn requeue_message(
        &mut self,
        webhook_id: &str,
        message_id: &str,
        now: Millis,
    ) -> Result<Option<Message>> {
        let row = sqlx::query(&format!(
            "UPDATE webhook_messages SET status = 'pending', next_attempt_at = $1, \
             schedule_base = attempts, locked_until = NULL, lease_token = NULL \
             WHERE id = $2 AND webhook_id = $3 RETURNING {MESSAGE_COLUMNS}"
        ))
        .bind(now)
        .bind(message_id)
        .bind(webhook_id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(message_from_row).transpose()
    }

    /// A key by id, as this unit of work sees it (for the data of an event it raises).
    pub async fn get_key(&mut self, id: &str) -> Result<Option<Key>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    /// Records that a key raised `notice`; `false` when it already had (by this or another
    /// process).
    pub async fn record_expiry_notice(
        &mut self,
        key_id: &str,
        notice: &str,
        at: Millis,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO webhook_expiry_notices (key_id, notice, sent_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key_id, notice) DO NOTHING",
        )
        .bind(key_id)
        .bind(notice)
        .bind(at)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Remembers the amount a new key's quota notices are taken of.
    pub async fn set_quota_base(&mut self, key_id: &str, base: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO webhook_quota_notices (key_id, base, low_sent, exhausted_sent) \
             VALUES ($1, $2, 0, 0) ON CONFLICT (key_id) DO UPDATE SET base = $2",
        )
        .bind(key_id)
        .bind(base)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// The state of a key's quota notices (a fresh one when it has none yet).
    pub async fn quota_notices(&mut self, key_id: &str) -> Result<QuotaNotices> {
        let row = sqlx::query(
            "SELECT base, low_sent, exhausted_sent FROM webhook_quota_notices WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(self.conn())
        .await?;
        match row {
            None => Ok(QuotaNotices::default()),
            Some(r) => Ok(QuotaNotices {
                base: r.try_get("base")?,
                low_sent: r.try_get::<i64, _>("low_sent")? != 0,
                exhausted_sent: r.try_get::<i64, _>("exhausted_sent")? != 0,
            }),
        }
    }

    /// Sets a notice's flag from `from` to `to`; `false` when it was not `from` (another process
    /// changed it first), so that each crossing raises its event once.
    pub async fn flip_quota_notice(
        &mut self,
        key_id: &str,
        exhausted: bool,
        from: bool,
        to: bool,
    ) -> Result<bool> {
        sqlx::query(
            "INSERT INTO webhook_quota_notices (key_id, base, low_sent, exhausted_sent) \
             VALUES ($1, NULL, 0, 0) ON CONFLICT (key_id) DO NOTHING",
        )
        .bind(key_id)
        .execute(self.conn())
        .await?;
        let column = if exhausted {
            "exhausted_sent"
        } else {
            "low_sent"
        };
        let n = sqlx::query(&format!(
            "UPDATE webhook_quota_notices SET {column} = $1 WHERE key_id = $2 AND {column} = $3"
        ))
        .bind(i64::from(to))
        .bind(key_id)
        .bind(i64::from(from))
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

fn webhook_from_row(r: &AnyRow) -> Result<Webhook> {
    Ok(Webhook {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        url: r.try_get("url")?,
        events: from_json(&r.try_get::<String, _>("events")?)?,
        description: r.try_get("description")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        secret_sealed: r.try_get("secret_sealed")?,
        secret_pepper_version: r.try_get("secret_pepper_version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn message_from_row(r: &AnyRow) -> Result<Message> {
    let status: String = r.try_get("status")?;
    Ok(Message {
        id: r.try_get("id")?,
        webhook_id: r.try_get("webhook_id")?,
        org_id: r.try_get("org_id")?,
        event: r.try_get("event")?,
        payload: r.try_get("payload")?,
        status: MessageStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts: r.try_get("attempts")?,
        schedule_base: r.try_get("schedule_base")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        response_status: r.try_get("response_status")?,
        last_error: r.try_get("last_error")?,
        created_at: r.try_get("created_at")?,
        delivered_at: r.try_get("delivered_at")?,
    })
}
