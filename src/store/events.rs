//! Security events, and the networks each key was used from (for the `new_ip` detector).

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Sql, Store, corrupt};
use crate::domain::model::Millis;
use crate::domain::security::{EventType, SecurityEvent, Severity};

/// Filters of `GET /v1/security-events`.
#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub kind: Option<EventType>,
    pub key_id: Option<String>,
    pub limit: u32,
    /// The sequence number of the last event of the page before.
    pub cursor: Option<i64>,
}

const EVENT_COLUMNS: &str =
    "seq, id, org_id, type, severity, key_id, prefix, ip, count, detail, created_at, last_seen_at";

impl Store {
    /// Appends a new event.
    pub async fn insert_security_event(&self, e: &SecurityEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO security_events (id, org_id, type, severity, key_id, prefix, ip, count, \
             detail, created_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&e.id)
        .bind(&e.org_id)
        .bind(e.kind.as_str())
        .bind(e.severity.as_str())
        .bind(&e.key_id)
        .bind(&e.prefix)
        .bind(&e.ip)
        .bind(e.count)
        .bind(&e.detail)
        .bind(e.created_at)
        .bind(e.last_seen_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Brings an event's count and detail up to date as its burst goes on.
    pub async fn update_security_event(
        &self,
        id: &str,
        count: i64,
        detail: &str,
        last_seen_at: Millis,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE security_events SET count = $2, detail = $3, last_seen_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(count)
        .bind(detail)
        .bind(last_seen_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether the organization has an event of `kind` about `key_id` created at or after `since`
    /// (another instance, or this one before a restart, may have raised it).
    pub async fn has_recent_security_event(
        &self,
        org_id: &str,
        kind: EventType,
        key_id: &str,
        since: Millis,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM security_events \
             WHERE org_id = $1 AND type = $2 AND key_id = $3 AND created_at >= $4",
        )
        .bind(org_id)
        .bind(kind.as_str())
        .bind(key_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// The organization's events, newest first; the returned `i64` is each event's sequence
    /// number, for the cursor.
    pub async fn list_security_events(
        &self,
        org_id: &str,
        f: &EventFilter,
    ) -> Result<Vec<(i64, SecurityEvent)>> {
        let mut sql = Sql::new(
            format!("SELECT {EVENT_COLUMNS} FROM security_events WHERE org_id = $1"),
            1,
        );
        let clause = |sql: &mut Sql, template: &str| {
            let p = sql.arg();
            sql.push(&template.replace("$?", &p));
        };
        if f.kind.is_some() {
            clause(&mut sql, " AND type = $?");
        }
        if f.key_id.is_some() {
            clause(&mut sql, " AND key_id = $?");
        }
        if f.cursor.is_some() {
            clause(&mut sql, " AND seq < $?");
        }
        clause(&mut sql, " ORDER BY seq DESC LIMIT $?");
        let sql = sql.text;
        let mut q = sqlx::query(&sql).bind(org_id);
        if let Some(k) = f.kind {
            q = q.bind(k.as_str());
        }
        if let Some(k) = &f.key_id {
            q = q.bind(k);
        }
        if let Some(c) = f.cursor {
            q = q.bind(c);
        }
        q = q.bind(i64::from(f.limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, event_from_row(r)?)))
            .collect()
    }

    /// The networks `key_id` was used from, with when each was last seen.
    pub async fn key_networks(&self, key_id: &str) -> Result<Vec<(String, Millis)>> {
        let rows = sqlx::query("SELECT network, last_seen_at FROM key_networks WHERE key_id = $1")
            .bind(key_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("network")?, r.try_get("last_seen_at")?)))
            .collect()
    }

    /// Records that keys were seen on networks, in one unit of work: `(key id, network, when)`.
    /// A later time than the stored one replaces it; an earlier one changes nothing.
    pub async fn touch_key_networks(&self, seen: &[(String, String, Millis)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for (key_id, network, at) in seen {
            sqlx::query(
                "INSERT INTO key_networks (key_id, network, last_seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key_id, network) DO UPDATE SET last_seen_at = CASE \
                 WHEN excluded.last_seen_at > key_networks.last_seen_at THEN excluded.last_seen_at \
                 ELSE key_networks.last_seen_at END",
            )
            .bind(key_id)
            .bind(network)
            .bind(*at)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await
    }
}

fn event_from_row(r: &AnyRow) -> Result<SecurityEvent> {
    let kind: String = r.try_get("type")?;
    let severity: String = r.try_get("severity")?;
    Ok(SecurityEvent {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        kind: EventType::parse(&kind).ok_or_else(|| corrupt("security event type", &kind))?,
        severity: Severity::parse(&severity)
            .ok_or_else(|| corrupt("security event severity", &severity))?,
        key_id: r.try_get("key_id")?,
        prefix: r.try_get("prefix")?,
        ip: r.try_get("ip")?,
        count: r.try_get("count")?,
        detail: r.try_get("detail")?,
        created_at: r.try_get("created_at")?,
        last_seen_at: r.try_get("last_seen_at")?,
    })
}
