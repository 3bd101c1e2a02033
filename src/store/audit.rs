//! The append-only audit log: who did what to which key, member, API or organization.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Result, Sql, Store, StoreTx, corrupt, from_json};
use crate::domain::model::{Actor, AuditEvent, Millis};

/// Filters of `GET /v1/audit-log`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub limit: u32,
    pub cursor: Option<i64>,
}

const AUDIT_COLUMNS: &str = "seq, id, org_id, actor_kind, actor_id, actor_label, action, target_type, target_id, \
     target_label, ip, user_agent, details, created_at";

impl Store {
    /// Appends an event on its own, outside any other change.
    pub async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.append_audit(e).await?;
        tx.commit().await
    }

    /// Newest first; the returned `i64` is each event's sequence number, for the cursor.
    pub async fn list_audit(
        &self,
        org_id: &str,
        f: &AuditFilter,
    ) -> Result<Vec<(i64, AuditEvent)>> {
        let mut sql = Sql::new(
            format!("SELECT {AUDIT_COLUMNS} FROM audit_events WHERE org_id = $1"),
            1,
        );
        let clause = |sql: &mut Sql, template: &str| {
            let p = sql.arg();
            sql.push(&template.replace("$?", &p));
        };
        if f.actor.is_some() {
            clause(&mut sql, " AND (actor_id = $? OR actor_label = $?)");
        }
        if f.action.is_some() {
            clause(&mut sql, " AND action = $?");
        }
        if f.target_id.is_some() {
            clause(&mut sql, " AND target_id = $?");
        }
        if f.from.is_some() {
            clause(&mut sql, " AND created_at >= $?");
        }
        if f.to.is_some() {
            clause(&mut sql, " AND created_at < $?");
        }
        if f.cursor.is_some() {
            clause(&mut sql, " AND seq < $?");
        }
        clause(&mut sql, " ORDER BY seq DESC LIMIT $?");
        let sql = sql.text;
        let mut q = sqlx::query(&sql).bind(org_id);
        if let Some(a) = &f.actor {
            q = q.bind(a);
        }
        if let Some(a) = &f.action {
            q = q.bind(a);
        }
        if let Some(t) = &f.target_id {
            q = q.bind(t);
        }
        if let Some(t) = f.from {
            q = q.bind(t);
        }
        if let Some(t) = f.to {
            q = q.bind(t);
        }
        if let Some(c) = f.cursor {
            q = q.bind(c);
        }
        q = q.bind(i64::from(f.limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("seq")?, audit_from_row(r)?)))
            .collect()
    }
}

impl StoreTx {
    /// Appends an event, which stays only if the unit of work commits. There is no update or
    /// delete.
    pub async fn append_audit(&mut self, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (id, org_id, actor_kind, actor_id, actor_label, action, target_type, \
             target_id, target_label, ip, user_agent, details, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&e.id)
        .bind(&e.org_id)
        .bind(e.actor.kind)
        .bind(&e.actor.id)
        .bind(&e.actor.label)
        .bind(&e.action)
        .bind(&e.target_type)
        .bind(&e.target_id)
        .bind(&e.target_label)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(e.details.to_string())
        .bind(e.created_at)
        .execute(self.conn())
        .await?;
        self.audited
            .push((e.action.clone(), e.target_id.clone(), e.org_id.clone()));
        Ok(())
    }
}

fn audit_from_row(r: &AnyRow) -> Result<AuditEvent> {
    let kind: String = r.try_get("actor_kind")?;
    let kind = match kind.as_str() {
        "user" => "user",
        "key" => "key",
        "system" => "system",
        other => return Err(corrupt("actor_kind", other)),
    };
    Ok(AuditEvent {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        actor: Actor {
            kind,
            id: r.try_get("actor_id")?,
            label: r.try_get("actor_label")?,
        },
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        target_label: r.try_get("target_label")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        details: from_json(&r.try_get::<String, _>("details")?)?,
        created_at: r.try_get("created_at")?,
    })
}
