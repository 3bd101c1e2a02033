//! API keys: their records, the key limit's count, the lifecycle writes (revoke, rotate, delete)
//! and what the verifier writes behind (last use, quota).

use std::str::FromStr;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyExecutor, Row};

use super::{Backend, Result, Sql, Store, StoreTx, corrupt, from_json, to_json, unique};
use crate::domain::key::KeyHash;
use crate::domain::model::{Environment, Key, Millis, Quota, RateLimit};

/// Which keys a listing returns, in what order, and which page of them.
#[derive(Debug, Default, Clone)]
pub struct KeyFilter {
    pub api_id: Option<String>,
    pub owner_id: Option<String>,
    pub status: Option<StatusFilter>,
    pub environment: Option<Environment>,
    /// Keys whose name contains it (ASCII letters in any case), or whose id (`key_...`) or
    /// prefix (`kw_live_...`) starts with it.
    pub search: Option<String>,
    pub order: KeyOrder,
    pub limit: u32,
    /// Keyset paging, after this (created, id); only with the default order.
    pub cursor: Option<(Millis, String)>,
    /// Rows to skip: paging by page number, in any order.
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Disabled,
    Revoked,
    Expired,
    All,
}

/// The columns a listing sorts by: a fixed list, each with its own SQL, never a name from a
/// request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeySort {
    Name,
    #[default]
    Created,
    LastUsed,
    Expires,
}

/// A sort column and its direction. The default is the newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyOrder {
    pub by: KeySort,
    pub descending: bool,
}

impl Default for KeyOrder {
    fn default() -> Self {
        KeyOrder {
            by: KeySort::Created,
            descending: true,
        }
    }
}

impl KeyOrder {
    /// The `ORDER BY` clause. A key never used sorts as the oldest use, and one that never
    /// expires as the latest expiry, on SQLite and PostgreSQL alike (they place NULLs at
    /// opposite ends); the id breaks ties, so that pages neither repeat nor skip a key.
    fn sql(self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        let column = match self.by {
            KeySort::Name => format!("LOWER(name) {dir}"),
            KeySort::Created => format!("created_at {dir}"),
            KeySort::LastUsed => format!(
                "CASE WHEN last_used_at IS NULL THEN 0 ELSE 1 END {dir}, last_used_at {dir}"
            ),
            KeySort::Expires => {
                format!("CASE WHEN expires_at IS NULL THEN 1 ELSE 0 END {dir}, expires_at {dir}")
            }
        };
        format!(" ORDER BY {column}, id {dir}")
    }
}

/// A value bound to a query assembled from optional clauses.
enum Arg {
    Text(String),
    Int(i64),
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The `WHERE` clause of a listing (without its cursor) and its values, from `$1`.
fn key_conditions(org_id: &str, f: &KeyFilter, now: Millis) -> (Sql, Vec<Arg>) {
    let mut sql = Sql::new(" WHERE org_id = $1".to_owned(), 1);
    let mut args = vec![Arg::Text(org_id.to_owned())];
    if let Some(a) = &f.api_id {
        let p = sql.arg();
        sql.push(&format!(" AND api_id = {p}"));
        args.push(Arg::Text(a.clone()));
    }
    if let Some(o) = &f.owner_id {
        let p = sql.arg();
        sql.push(&format!(" AND owner_id = {p}"));
        args.push(Arg::Text(o.clone()));
    }
    if let Some(env) = f.environment {
        let p = sql.arg();
        sql.push(&format!(" AND environment = {p}"));
        args.push(Arg::Text(env.as_str().to_owned()));
    }
    if let Some(term) = f.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        // Ids and prefixes are lowercase; a masked prefix copied from a page ends in bullets.
        let lower = term.trim_end_matches('•').trim().to_lowercase();
        let escaped = like_escape(&lower);
        let id_pattern = if lower.starts_with("key_") {
            format!("{escaped}%")
        } else {
            format!("key\\_{escaped}%")
        };
        // SQLite lowercases ASCII letters only: the name is also matched as typed, so that
        // other letters are found at least in their own case.
        let (n, r, i, k) = (sql.arg(), sql.arg(), sql.arg(), sql.arg());
        sql.push(&format!(
            " AND (LOWER(name) LIKE {n} ESCAPE '\\' OR name LIKE {r} ESCAPE '\\' \
             OR id LIKE {i} ESCAPE '\\' OR (key_prefix || SUBSTR(id, 5)) LIKE {k} ESCAPE '\\')"
        ));
        args.push(Arg::Text(format!(
            "%{}%",
            like_escape(&term.to_lowercase())
        )));
        args.push(Arg::Text(format!("%{}%", like_escape(term))));
        args.push(Arg::Text(id_pattern));
        args.push(Arg::Text(format!("{escaped}%")));
    }
    let live = " AND deleted_at IS NULL";
    match f.status {
        None => sql.push(live),
        Some(StatusFilter::All) => {}
        Some(status) => {
            let t = sql.arg();
            args.push(Arg::Int(now));
            let not_revoked = format!("(revoked_at IS NULL OR revoked_at > {t})");
            let not_expired = format!("(expires_at IS NULL OR expires_at > {t})");
            sql.push(live);
            sql.push(&match status {
                StatusFilter::Active => {
                    format!(" AND enabled = 1 AND {not_revoked} AND {not_expired}")
                }
                StatusFilter::Disabled => {
                    format!(" AND enabled = 0 AND {not_revoked} AND {not_expired}")
                }
                StatusFilter::Revoked => format!(" AND revoked_at <= {t}"),
                StatusFilter::Expired => format!(" AND {not_revoked} AND expires_at <= {t}"),
                StatusFilter::All => unreachable!("handled above"),
            });
        }
    }
    (sql, args)
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    args: Vec<Arg>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Text(s) => q.bind(s),
            Arg::Int(i) => q.bind(i),
        };
    }
    q
}

/// One `last_used` observation, written behind in batches.
#[derive(Debug, Clone)]
pub struct UsageTouch {
    pub key_id: String,
    pub at: Millis,
    pub ip: Option<String>,
}

pub(super) const KEY_COLUMNS: &str = "id, org_id, api_id, name, description, key_prefix, token_type, environment, scopes, \
     ip_allowlist, expires_at, enabled, hash, pepper_version, owner_id, created_by, created_at, updated_at, \
     last_used_at, last_used_ip, rate_limit_requests, rate_limit_per_seconds, quota_remaining, quota_refill, \
     quota_refilled_at, metadata, replaces, replaced_by, revoked_at, revoke_reason, deleted_at, exposed_at, \
     recoverable, encrypted_secret, ip_acl_ids, group_ids, resources";

impl Store {
    pub async fn create_key(&self, key: &Key) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.create_key(key).await?;
        tx.commit().await
    }

    /// Stores many keys in one transaction (imports, benchmarks); all or nothing.
    pub async fn create_keys(&self, keys: &[Key]) -> Result<()> {
        let mut tx = self.begin().await?;
        for key in keys {
            tx.create_key(key).await?;
        }
        tx.commit().await
    }

    /// Ids and versions (`updated_at`) of keys changed at `since` or later, in order of version
    /// and id, `limit` at a time: `after` is the last row of the page before (however many rows
    /// share one version, each comes once).
    pub async fn keys_changed_since(
        &self,
        since: Millis,
        after: Option<(Millis, &str)>,
        limit: i64,
    ) -> Result<Vec<(String, Millis)>> {
        let rows = match after {
            None => {
                sqlx::query(
                    "SELECT id, updated_at FROM keys WHERE updated_at >= $1 \
                     ORDER BY updated_at, id LIMIT $2",
                )
                .bind(since)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            Some((version, id)) => {
                sqlx::query(
                    "SELECT id, updated_at FROM keys WHERE updated_at >= $1 \
                     AND (updated_at > $1 OR id > $2) ORDER BY updated_at, id LIMIT $3",
                )
                .bind(version.max(since))
                .bind(id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("updated_at")?)))
            .collect()
    }

    /// A key by its public id (`key_...`), whatever its organization; the caller scopes it.
    pub async fn get_key(&self, id: &str) -> Result<Option<Key>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        self.linked(row.map(|r| key_from_row(&r)).transpose()?)
            .await
    }

    /// A key read alone, with its ACLs and groups resolved.
    async fn linked(&self, key: Option<Key>) -> Result<Option<Key>> {
        let Some(key) = key else { return Ok(None) };
        let mut one = [key];
        self.link_keys(&mut one).await?;
        let [key] = one;
        Ok(Some(key))
    }

    /// The key whose stored hash is one of `hashes` (one per configured pepper), whatever its
    /// organization; the caller scopes it. Through the unique index on `hash`.
    pub async fn get_key_by_hash(&self, hashes: &[KeyHash]) -> Result<Option<Key>> {
        if hashes.is_empty() {
            return Ok(None);
        }
        let params: Vec<String> = (1..=hashes.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE hash IN ({})",
            params.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for hash in hashes {
            q = q.bind(hash.to_hex());
        }
        let row = q.fetch_optional(&self.pool).await?;
        self.linked(row.map(|r| key_from_row(&r)).transpose()?)
            .await
    }

    pub async fn get_key_in_org(&self, org_id: &str, id: &str) -> Result<Option<Key>> {
        Ok(self.get_key(id).await?.filter(|k| k.org_id == org_id))
    }

    /// A page of the organization's keys that match `f`, in its order.
    pub async fn list_keys(&self, org_id: &str, f: &KeyFilter, now: Millis) -> Result<Vec<Key>> {
        let (mut sql, mut args) = key_conditions(org_id, f, now);
        if let Some((t, id)) = &f.cursor {
            let (c, i) = (sql.arg(), sql.arg());
            sql.push(&format!(
                " AND (created_at < {c} OR (created_at = {c} AND id < {i}))"
            ));
            args.push(Arg::Int(*t));
            args.push(Arg::Text(id.clone()));
        }
        sql.push(&f.order.sql());
        let (l, o) = (sql.arg(), sql.arg());
        sql.push(&format!(" LIMIT {l} OFFSET {o}"));
        args.push(Arg::Int(i64::from(f.limit)));
        args.push(Arg::Int(i64::try_from(f.offset).unwrap_or(i64::MAX)));
        let text = format!("SELECT {KEY_COLUMNS} FROM keys{}", sql.text);
        let rows = bind_all(sqlx::query(&text), args)
            .fetch_all(&self.pool)
            .await?;
        let mut keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        self.link_keys(&mut keys).await?;
        Ok(keys)
    }

    /// How many of the organization's keys match `f`, whatever its page.
    pub async fn count_keys(&self, org_id: &str, f: &KeyFilter, now: Millis) -> Result<i64> {
        let (sql, args) = key_conditions(org_id, f, now);
        let text = format!("SELECT COUNT(*) AS n FROM keys{}", sql.text);
        let row = bind_all(sqlx::query(&text), args)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Revokes every live key of one owner at `at`, in one statement; returns the keys revoked
    /// (id and masked prefix).
    pub async fn revoke_keys_of_owner(
        &self,
        org_id: &str,
        owner_id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut tx = self.begin().await?;
        let revoked = tx
            .revoke_keys_of_owner(org_id, owner_id, at, reason)
            .await?;
        tx.commit().await?;
        Ok(revoked)
    }

    /// Keys of one owner (every API), for revoking them when the owner goes.
    pub async fn list_keys_of_owner(&self, org_id: &str, owner_id: &str) -> Result<Vec<Key>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM keys WHERE org_id = $1 AND owner_id = $2"
        ))
        .bind(org_id)
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        let mut keys = rows.iter().map(key_from_row).collect::<Result<Vec<_>>>()?;
        self.link_keys(&mut keys).await?;
        Ok(keys)
    }

    /// Keys that count against the organization's key limit: not deleted, not revoked.
    pub async fn count_live_keys(&self, org_id: &str, now: Millis) -> Result<i64> {
        count_live_keys(&self.pool, org_id, now).await
    }

    /// Active keys of one owner for one API: the candidates the single-active-key policy revokes.
    pub async fn active_key_ids(
        &self,
        org_id: &str,
        api_id: &str,
        owner_id: &str,
        now: Millis,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT id FROM keys WHERE org_id = $1 AND api_id = $2 AND owner_id = $3 AND deleted_at IS NULL \
             AND (revoked_at IS NULL OR revoked_at > $4)",
        )
        .bind(org_id)
        .bind(api_id)
        .bind(owner_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }

    /// Writes every mutable field of `key`.
    pub async fn update_key(&self, key: &Key) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.update_key(key).await?;
        tx.commit().await
    }

    /// [`StoreTx::rotate_key`] on its own.
    pub async fn rotate_key(&self, old: &Key, new: &Key, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let rotated = tx.rotate_key(old, new, now).await?;
        tx.commit().await?;
        Ok(rotated)
    }

    /// [`StoreTx::update_key_settings`] on its own.
    pub async fn update_key_settings(&self, key: &Key, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = tx.update_key_settings(key, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// [`StoreTx::revoke_key`] on its own.
    pub async fn revoke_key(
        &self,
        org_id: &str,
        id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = tx.revoke_key(org_id, id, at, reason).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// [`StoreTx::delete_key`] on its own.
    pub async fn delete_key(&self, org_id: &str, id: &str, at: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = tx.delete_key(org_id, id, at).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// [`StoreTx::mark_key_exposed`] on its own.
    pub async fn mark_key_exposed(&self, id: &str, at: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let changed = tx.mark_key_exposed(id, at).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Writes a batch of `last_used` observations; never moves `last_used_at` backwards. Rows go
    /// in multi-row statements (`UPDATE ... FROM (VALUES ...)`, which SQLite and PostgreSQL both
    /// read; VALUES columns are `column1..3` in both), so a busy second costs a few statements.
    /// SQLite gets anonymous `?` parameters here: it resolves each named `$N` by a linear search,
    /// which makes binding hundreds of them quadratic.
    pub async fn touch_keys(&self, touches: &[UsageTouch]) -> Result<()> {
        const ROWS: usize = 300;
        if touches.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for chunk in touches.chunks(ROWS) {
            let mut sql = String::with_capacity(200 + chunk.len() * 24);
            sql.push_str(
                "UPDATE keys SET last_used_at = v.column2, last_used_ip = v.column3 FROM (VALUES ",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match self.backend {
                    Backend::Sqlite => sql.push_str("(?, ?, ?)"),
                    Backend::Postgres => {
                        let n = i * 3;
                        sql.push_str(&format!("(${}, ${}, ${})", n + 1, n + 2, n + 3));
                    }
                }
            }
            sql.push_str(
                ") AS v WHERE keys.id = v.column1 \
                 AND (keys.last_used_at IS NULL OR keys.last_used_at < v.column2)",
            );
            let mut q = sqlx::query(&sql);
            for t in chunk {
                q = q.bind(&t.key_id).bind(t.at).bind(&t.ip);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Spends `cost` uses of a key's quota, refilling it first when a refill is due. Returns the
    /// remaining uses after spending, or `None` when the quota cannot cover `cost` (nothing spent).
    pub async fn consume_quota(&self, key_id: &str, cost: i64, now: Millis) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT quota_remaining, quota_refill, quota_refilled_at FROM keys WHERE id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let refill: Option<String> = row.try_get("quota_refill")?;
        let refilled_at: Option<i64> = row.try_get("quota_refilled_at")?;
        if let (Some(refill), Some(refilled_at)) = (refill, refilled_at) {
            let refill: crate::domain::model::Refill = from_json(&refill)?;
            if crate::domain::model::refill_due(refill.interval, refilled_at, now) {
                sqlx::query(
                    "UPDATE keys SET quota_remaining = $1, quota_refilled_at = $2 \
                     WHERE id = $3 AND quota_refilled_at = $4",
                )
                .bind(refill.amount)
                .bind(now)
                .bind(key_id)
                .bind(refilled_at)
                .execute(&self.pool)
                .await?;
            }
        }
        let row = sqlx::query(
            "UPDATE keys SET quota_remaining = quota_remaining - $1 \
             WHERE id = $2 AND quota_remaining >= $1 RETURNING quota_remaining",
        )
        .bind(cost)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| r.try_get::<i64, _>("quota_remaining"))
            .transpose()
            .map_err(Into::into)
    }
}

impl StoreTx {
    /// Stores a new key; an id or hash already stored is a conflict.
    pub async fn create_key(&mut self, key: &Key) -> Result<()> {
        insert_key(self.conn(), key).await
    }

    /// Keys that count against the organization's key limit, as this unit of work sees them.
    pub async fn count_live_keys(&mut self, org_id: &str, now: Millis) -> Result<i64> {
        count_live_keys(self.conn(), org_id, now).await
    }

    /// Revokes every live key of one owner at `at`; returns the keys revoked (id and masked
    /// prefix).
    pub async fn revoke_keys_of_owner(
        &mut self,
        org_id: &str,
        owner_id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 WHERE org_id = $3 AND owner_id = $4 \
             AND deleted_at IS NULL AND (revoked_at IS NULL OR revoked_at > $1) RETURNING id, key_prefix",
        )
        .bind(at)
        .bind(reason)
        .bind(org_id)
        .bind(owner_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(revoked_from_row).collect()
    }

    /// Revokes at `at` every live key of one owner for one API (the one-active-key policy);
    /// returns the keys revoked (id and masked prefix).
    pub async fn revoke_active_keys(
        &mut self,
        org_id: &str,
        api_id: &str,
        owner_id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 \
             WHERE org_id = $3 AND api_id = $4 AND owner_id = $5 AND deleted_at IS NULL \
             AND (revoked_at IS NULL OR revoked_at > $1) RETURNING id, key_prefix",
        )
        .bind(at)
        .bind(reason)
        .bind(org_id)
        .bind(api_id)
        .bind(owner_id)
        .fetch_all(self.conn())
        .await?;
        rows.iter().map(revoked_from_row).collect()
    }

    /// Writes every mutable field of `key`.
    pub async fn update_key(&mut self, key: &Key) -> Result<()> {
        sqlx::query(
            "UPDATE keys SET name = $1, description = $2, scopes = $3, ip_allowlist = $4, expires_at = $5, \
             enabled = $6, rate_limit_requests = $7, rate_limit_per_seconds = $8, metadata = $9, \
             replaced_by = $10, revoked_at = $11, revoke_reason = $12, deleted_at = $13, exposed_at = $14, \
             updated_at = $15, owner_id = $16 WHERE id = $17 AND org_id = $18",
        )
        .bind(&key.name)
        .bind(&key.description)
        .bind(to_json(&key.scopes))
        .bind(to_json(&nets_to_strings(key)))
        .bind(key.expires_at)
        .bind(i64::from(key.enabled))
        .bind(key.rate_limit.map(|r| i64::from(r.requests)))
        .bind(key.rate_limit.map(|r| i64::from(r.per_seconds)))
        .bind(to_json(&key.metadata))
        .bind(&key.replaced_by)
        .bind(key.revoked_at)
        .bind(&key.revoke_reason)
        .bind(key.deleted_at)
        .bind(key.exposed_at)
        .bind(key.updated_at)
        .bind(&key.owner_id)
        .bind(&key.id)
        .bind(&key.org_id)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Stores the replacement `new` and points `old` at it, revoked at `old.revoked_at`; only
    /// while `old` is still live and not yet replaced. Returns false (and stores nothing) when
    /// another change got there first.
    pub async fn rotate_key(&mut self, old: &Key, new: &Key, now: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET replaced_by = $1, revoked_at = $2, revoke_reason = $3, updated_at = $4 \
             WHERE id = $5 AND org_id = $6 AND replaced_by IS NULL AND deleted_at IS NULL \
             AND (revoked_at IS NULL OR revoked_at > $4)",
        )
        .bind(&new.id)
        .bind(old.revoked_at)
        .bind(&old.revoke_reason)
        .bind(now)
        .bind(&old.id)
        .bind(&old.org_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        insert_key(self.conn(), new).await?;
        Ok(true)
    }

    /// Writes the editable settings of a live key (name, description, scopes, allowlist,
    /// metadata, enabled, rate limit). Returns false when the key was revoked or deleted meanwhile.
    pub async fn update_key_settings(&mut self, key: &Key, now: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET name = $1, description = $2, scopes = $3, ip_allowlist = $4, metadata = $5, \
             enabled = $6, rate_limit_requests = $7, rate_limit_per_seconds = $8, updated_at = $9, \
             ip_acl_ids = $12, group_ids = $13, resources = $14 \
             WHERE id = $10 AND org_id = $11 AND deleted_at IS NULL AND (revoked_at IS NULL OR revoked_at > $9)",
        )
        .bind(&key.name)
        .bind(&key.description)
        .bind(to_json(&key.scopes))
        .bind(to_json(&nets_to_strings(key)))
        .bind(to_json(&key.metadata))
        .bind(i64::from(key.enabled))
        .bind(key.rate_limit.map(|r| i64::from(r.requests)))
        .bind(key.rate_limit.map(|r| i64::from(r.per_seconds)))
        .bind(now)
        .bind(&key.id)
        .bind(&key.org_id)
        .bind(to_json(&key.ip_acl_ids))
        .bind(to_json(&key.group_ids))
        .bind(to_json(&key.resources))
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Revokes a key at `at` unless it already stopped working by then. Returns whether it changed.
    pub async fn revoke_key(
        &mut self,
        org_id: &str,
        id: &str,
        at: Millis,
        reason: &str,
    ) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 \
             WHERE id = $3 AND org_id = $4 AND (revoked_at IS NULL OR revoked_at > $1)",
        )
        .bind(at)
        .bind(reason)
        .bind(id)
        .bind(org_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Deletes (and, if still live, revokes) a key at `at`. Returns whether it changed.
    pub async fn delete_key(&mut self, org_id: &str, id: &str, at: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET deleted_at = $1, updated_at = $1, \
             revoke_reason = CASE WHEN revoked_at IS NULL OR revoked_at > $1 THEN 'deleted' ELSE revoke_reason END, \
             revoked_at = CASE WHEN revoked_at IS NULL OR revoked_at > $1 THEN $1 ELSE revoked_at END \
             WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .bind(org_id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Marks a key exposed, once. Returns whether this call marked it. The key's version
    /// (`updated_at`) moves forward, so that other instances following changes see it.
    pub async fn mark_key_exposed(&mut self, id: &str, at: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET exposed_at = $1, \
             updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at + 1 END \
             WHERE id = $2 AND exposed_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(self.conn())
        .await?
        .rows_affected();
        Ok(changed == 1)
    }
}

async fn count_live_keys<'e>(db: impl AnyExecutor<'e>, org_id: &str, now: Millis) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM keys WHERE org_id = $1 AND deleted_at IS NULL \
         AND (revoked_at IS NULL OR revoked_at > $2)",
    )
    .bind(org_id)
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok(row.try_get("n")?)
}

/// A revoked key's id and masked prefix, from `RETURNING id, key_prefix`.
fn revoked_from_row(r: &AnyRow) -> Result<(String, String)> {
    let id: String = r.try_get("id")?;
    let prefix: String = r.try_get("key_prefix")?;
    let masked = format!("{prefix}{}", id.strip_prefix("key_").unwrap_or(&id));
    Ok((id, masked))
}

fn nets_to_strings(key: &Key) -> Vec<String> {
    key.ip_allowlist.iter().map(|n| n.to_string()).collect()
}

pub(super) async fn insert_key(conn: &mut AnyConnection, k: &Key) -> Result<()> {
    let (quota_remaining, quota_refill, quota_refilled_at) = match &k.quota {
        Some(q) => (
            Some(q.remaining),
            q.refill.map(|r| to_json(&r)),
            Some(q.refilled_at),
        ),
        None => (None, None, None),
    };
    sqlx::query(&format!(
        "INSERT INTO keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, \
         $35, $36, $37)"
    ))
    .bind(&k.id)
    .bind(&k.org_id)
    .bind(&k.api_id)
    .bind(&k.name)
    .bind(&k.description)
    .bind(&k.key_prefix)
    .bind(&k.token_type)
    .bind(k.environment.as_str())
    .bind(to_json(&k.scopes))
    .bind(to_json(&nets_to_strings(k)))
    .bind(k.expires_at)
    .bind(i64::from(k.enabled))
    .bind(k.hash.to_hex())
    .bind(k.pepper_version)
    .bind(&k.owner_id)
    .bind(&k.created_by)
    .bind(k.created_at)
    .bind(k.updated_at)
    .bind(k.last_used_at)
    .bind(&k.last_used_ip)
    .bind(k.rate_limit.map(|r| i64::from(r.requests)))
    .bind(k.rate_limit.map(|r| i64::from(r.per_seconds)))
    .bind(quota_remaining)
    .bind(quota_refill)
    .bind(quota_refilled_at)
    .bind(to_json(&k.metadata))
    .bind(&k.replaces)
    .bind(&k.replaced_by)
    .bind(k.revoked_at)
    .bind(&k.revoke_reason)
    .bind(k.deleted_at)
    .bind(k.exposed_at)
    .bind(i64::from(k.recoverable))
    .bind(&k.encrypted_secret)
    .bind(to_json(&k.ip_acl_ids))
    .bind(to_json(&k.group_ids))
    .bind(to_json(&k.resources))
    .execute(conn)
    .await
    .map_err(|e| unique(e, "a key with this id"))?;
    Ok(())
}

pub(super) fn key_from_row(r: &AnyRow) -> Result<Key> {
    let env: String = r.try_get("environment")?;
    let hash: String = r.try_get("hash")?;
    let nets: Vec<String> = from_json(&r.try_get::<String, _>("ip_allowlist")?)?;
    let ip_allowlist = nets
        .iter()
        .map(|s| ipnet::IpNet::from_str(s).map_err(|_| corrupt("ip_allowlist", s)))
        .collect::<Result<Vec<_>>>()?;
    let rl_req: Option<i64> = r.try_get("rate_limit_requests")?;
    let rl_per: Option<i64> = r.try_get("rate_limit_per_seconds")?;
    let quota_remaining: Option<i64> = r.try_get("quota_remaining")?;
    let quota_refill: Option<String> = r.try_get("quota_refill")?;
    let quota = match quota_remaining {
        Some(remaining) => Some(Quota {
            remaining,
            refill: quota_refill.map(|s| from_json(&s)).transpose()?,
            refilled_at: r
                .try_get::<Option<i64>, _>("quota_refilled_at")?
                .unwrap_or(0),
        }),
        None => None,
    };
    Ok(Key {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        api_id: r.try_get("api_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        key_prefix: r.try_get("key_prefix")?,
        token_type: r.try_get("token_type")?,
        environment: Environment::parse(&env).ok_or_else(|| corrupt("environment", &env))?,
        scopes: from_json(&r.try_get::<String, _>("scopes")?)?,
        ip_allowlist,
        expires_at: r.try_get("expires_at")?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        hash: KeyHash::from_hex(&hash).ok_or_else(|| corrupt("hash", "<not hex>"))?,
        pepper_version: r.try_get("pepper_version")?,
        owner_id: r.try_get("owner_id")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_used_at: r.try_get("last_used_at")?,
        last_used_ip: r.try_get("last_used_ip")?,
        rate_limit: match (rl_req, rl_per) {
            (Some(requests), Some(per)) => Some(RateLimit {
                requests: requests as u32,
                per_seconds: per as u32,
            }),
            _ => None,
        },
        quota,
        metadata: from_json(&r.try_get::<String, _>("metadata")?)?,
        replaces: r.try_get("replaces")?,
        replaced_by: r.try_get("replaced_by")?,
        revoked_at: r.try_get("revoked_at")?,
        revoke_reason: r.try_get("revoke_reason")?,
        deleted_at: r.try_get("deleted_at")?,
        exposed_at: r.try_get("exposed_at")?,
        recoverable: r.try_get::<i64, _>("recoverable")? != 0,
        encrypted_secret: r.try_get("encrypted_secret")?,
        ip_acl_ids: from_json(&r.try_get::<String, _>("ip_acl_ids")?)?,
        group_ids: from_json(&r.try_get::<String, _>("group_ids")?)?,
        resources: from_json(&r.try_get::<String, _>("resources")?)?,
        linked: Default::default(),
    })
}
