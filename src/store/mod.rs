//! Storage: one SQL implementation over `sqlx`'s `Any` driver, for SQLite (embedded default) and
//! PostgreSQL. The SQL is the portable subset both understand (`$N` parameters, `RETURNING`,
//! `ON CONFLICT`); what differs per backend (connection setup, migrations) lives in `sqlite.rs`
//! and `postgres.rs`. Times are BIGINT Unix milliseconds, lists and objects are JSON text.
//!
//! Every query that reads or changes tenant data is scoped by organization; the only unscoped
//! lookup is by a key's hash or public id, which the verifier needs before it knows the tenant.

mod postgres;
mod sessions;
mod sqlite;

pub use sessions::{Failures, SessionRecord, SetupTokenRecord};

use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::domain::key::KeyHash;
use crate::domain::model::{
    Actor, Api, AuditEvent, Environment, Key, Millis, Org, Quota, RateLimit, Role, User, UserStatus,
};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (duplicate slug, email, ...).
    #[error("already exists: {0}")]
    Conflict(&'static str),
    /// A stored value could not be read back; a bug or a hand-edited database.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Filters of `GET /v1/keys`.
#[derive(Debug, Default, Clone)]
pub struct KeyFilter {
    pub api_id: Option<String>,
    pub owner_id: Option<String>,
    pub status: Option<StatusFilter>,
    pub limit: u32,
    pub cursor: Option<(Millis, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Active,
    Revoked,
    Expired,
    All,
}

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

/// One `last_used` observation, written behind in batches.
#[derive(Debug, Clone)]
pub struct UsageTouch {
    pub key_id: String,
    pub at: Millis,
    pub ip: Option<String>,
}

/// The handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

const KEY_COLUMNS: &str = "id, org_id, api_id, name, description, key_prefix, token_type, environment, scopes, \
     ip_allowlist, expires_at, enabled, hash, pepper_version, owner_id, created_by, created_at, updated_at, \
     last_used_at, last_used_ip, rate_limit_requests, rate_limit_per_seconds, quota_remaining, quota_refill, \
     quota_refilled_at, metadata, replaces, replaced_by, revoked_at, revoke_reason, deleted_at, exposed_at, \
     recoverable, encrypted_secret";

const API_COLUMNS: &str = "id, org_id, name, slug, prefix_live, prefix_test, scopes, token_types, accept_x_api_key, \
     default_rate_limit, upstream, routes, created_at";

const USER_COLUMNS: &str = "id, org_id, email, name, role, status, created_at";

const ORG_COLUMNS: &str = "id, name, plan, api_access, billing_status, policies, created_at";

const AUDIT_COLUMNS: &str = "seq, id, org_id, actor_kind, actor_id, actor_label, action, target_type, target_id, \
     target_label, ip, user_agent, details, created_at";

impl Store {
    /// Connects to `url` (`sqlite://...` or `postgres://...`) and runs the embedded migrations.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                "the database URL must start with sqlite: or postgres:".into(),
            )));
        };
        let pool = match backend {
            Backend::Sqlite => sqlite::pool(url).await?,
            Backend::Postgres => postgres::pool(url).await?,
        };
        let store = Store { pool, backend };
        store.migrate().await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => sqlite::MIGRATOR.run(&self.pool).await?,
            Backend::Postgres => postgres::MIGRATOR.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ---------------------------------------------------------------- organizations

    pub async fn count_orgs(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM orgs")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Creates an organization with its first owner, its APIs and a first key, atomically.
    pub async fn create_org(&self, org: &Org, owner: &User, apis: &[Api], key: &Key) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO orgs ({ORG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        ))
        .bind(&org.id)
        .bind(&org.name)
        .bind(&org.plan)
        .bind(i64::from(org.api_access))
        .bind(&org.billing_status)
        .bind(to_json(&org.policies))
        .bind(org.created_at)
        .execute(&mut *tx)
        .await?;
        insert_user(&mut tx, owner, None).await?;
        for api in apis {
            insert_api(&mut tx, api).await?;
        }
        insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The organization created first: the operator's own, where events that belong to no
    /// organization are recorded.
    pub async fn first_org_id(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT id FROM orgs ORDER BY created_at, id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| r.try_get("id")).transpose().map_err(Into::into)
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Org>> {
        let row = sqlx::query(&format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| org_from_row(&r)).transpose()
    }

    pub async fn update_org(&self, org: &Org) -> Result<()> {
        sqlx::query(
            "UPDATE orgs SET name = $1, plan = $2, api_access = $3, billing_status = $4, policies = $5 WHERE id = $6",
        )
        .bind(&org.name)
        .bind(&org.plan)
        .bind(i64::from(org.api_access))
        .bind(&org.billing_status)
        .bind(to_json(&org.policies))
        .bind(&org.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- users

    pub async fn get_user(&self, id: &str) -> Result<Option<User>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    pub async fn get_user_in_org(&self, org_id: &str, id: &str) -> Result<Option<User>> {
        Ok(self.get_user(id).await?.filter(|u| u.org_id == org_id))
    }

    /// A user and their password hash, for sign-in.
    pub async fn get_user_by_email(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = $1 AND status <> 'deleted'"
        ))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some((user_from_row(&r)?, r.try_get("password_hash")?))),
            None => Ok(None),
        }
    }

    pub async fn list_users(&self, org_id: &str) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE org_id = $1 AND status <> 'deleted' ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn create_user(&self, user: &User, password_hash: Option<&str>) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_user(&mut tx, user, password_hash).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_user(&self, user: &User) -> Result<()> {
        sqlx::query("UPDATE users SET email = $1, name = $2, role = $3, status = $4 WHERE id = $5 AND org_id = $6")
            .bind(&user.email)
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(user.status.as_str())
            .bind(&user.id)
            .bind(&user.org_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---------------------------------------------------------------- APIs

    pub async fn create_api(&self, api: &Api) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_api(&mut tx, api).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_api(&self, api: &Api) -> Result<()> {
        sqlx::query(
            "UPDATE apis SET name = $1, prefix_live = $2, prefix_test = $3, scopes = $4, token_types = $5, \
             accept_x_api_key = $6, default_rate_limit = $7, upstream = $8, routes = $9 WHERE id = $10 AND org_id = $11",
        )
        .bind(&api.name)
        .bind(&api.prefix_live)
        .bind(&api.prefix_test)
        .bind(to_json(&api.scopes))
        .bind(to_json(&api.token_types))
        .bind(i64::from(api.accept_x_api_key))
        .bind(api.default_rate_limit.map(|r| to_json(&r)))
        .bind(&api.upstream)
        .bind(to_json(&api.routes))
        .bind(&api.id)
        .bind(&api.org_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_api(&self, id: &str) -> Result<Option<Api>> {
        let row = sqlx::query(&format!("SELECT {API_COLUMNS} FROM apis WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| api_from_row(&r)).transpose()
    }

    pub async fn get_api_by_slug(&self, org_id: &str, slug: &str) -> Result<Option<Api>> {
        let row = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE org_id = $1 AND slug = $2"
        ))
        .bind(org_id)
        .bind(slug)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| api_from_row(&r)).transpose()
    }

    pub async fn list_apis(&self, org_id: &str) -> Result<Vec<Api>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE org_id = $1 ORDER BY created_at, id"
        ))
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_from_row).collect()
    }

    /// Every API with an upstream, for the gateway.
    pub async fn list_gateway_apis(&self) -> Result<Vec<Api>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_COLUMNS} FROM apis WHERE upstream IS NOT NULL ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_from_row).collect()
    }

    // ---------------------------------------------------------------- keys

    pub async fn create_key(&self, key: &Key) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores many keys in one transaction (imports, benchmarks); all or nothing.
    pub async fn create_keys(&self, keys: &[Key]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for key in keys {
            insert_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates `key` and revokes `revoke` (ids, in the same organization) at `at`, atomically; for
    /// the single-active-key policy.
    pub async fn create_key_revoking(
        &self,
        key: &Key,
        revoke: &[String],
        at: Millis,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for id in revoke {
            sqlx::query(
                "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 \
                 WHERE id = $3 AND org_id = $4 AND (revoked_at IS NULL OR revoked_at > $1)",
            )
            .bind(at)
            .bind("replaced under the one-active-key policy")
            .bind(id)
            .bind(&key.org_id)
            .execute(&mut *tx)
            .await?;
        }
        insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A key by its public id (`key_...`), whatever its organization; the caller scopes it.
    /// Ids and versions (`updated_at`) of keys changed at or after `since`, oldest first, at most
    /// `limit` of them.
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

    pub async fn get_key(&self, id: &str) -> Result<Option<Key>> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| key_from_row(&r)).transpose()
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
        row.map(|r| key_from_row(&r)).transpose()
    }

    pub async fn get_key_in_org(&self, org_id: &str, id: &str) -> Result<Option<Key>> {
        Ok(self.get_key(id).await?.filter(|k| k.org_id == org_id))
    }

    pub async fn list_keys(&self, org_id: &str, f: &KeyFilter, now: Millis) -> Result<Vec<Key>> {
        let mut sql = Sql::new(
            format!("SELECT {KEY_COLUMNS} FROM keys WHERE org_id = $1"),
            1,
        );
        if f.api_id.is_some() {
            let p = sql.arg();
            sql.push(&format!(" AND api_id = {p}"));
        }
        if f.owner_id.is_some() {
            let p = sql.arg();
            sql.push(&format!(" AND owner_id = {p}"));
        }
        let uses_now = matches!(
            f.status,
            Some(StatusFilter::Active | StatusFilter::Revoked | StatusFilter::Expired)
        );
        let t = if uses_now { sql.arg() } else { String::new() };
        match f.status {
            None => sql.push(" AND deleted_at IS NULL"),
            Some(StatusFilter::All) => {}
            Some(StatusFilter::Active) => sql.push(&format!(
                " AND deleted_at IS NULL AND enabled = 1 AND (revoked_at IS NULL OR revoked_at > {t}) \
                 AND (expires_at IS NULL OR expires_at > {t})"
            )),
            Some(StatusFilter::Revoked) => {
                sql.push(&format!(" AND deleted_at IS NULL AND revoked_at <= {t}"))
            }
            Some(StatusFilter::Expired) => sql.push(&format!(
                " AND deleted_at IS NULL AND (revoked_at IS NULL OR revoked_at > {t}) AND expires_at <= {t}"
            )),
        }
        if f.cursor.is_some() {
            let (c, i) = (sql.arg(), sql.arg());
            sql.push(&format!(
                " AND (created_at < {c} OR (created_at = {c} AND id < {i}))"
            ));
        }
        let l = sql.arg();
        sql.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {l}"));
        let mut q = sqlx::query(&sql.text).bind(org_id);
        if let Some(a) = &f.api_id {
            q = q.bind(a);
        }
        if let Some(o) = &f.owner_id {
            q = q.bind(o);
        }
        if uses_now {
            q = q.bind(now);
        }
        if let Some((t, id)) = &f.cursor {
            q = q.bind(*t).bind(id);
        }
        q = q.bind(i64::from(f.limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(key_from_row).collect()
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
        let rows = sqlx::query(
            "UPDATE keys SET revoked_at = $1, revoke_reason = $2, updated_at = $1 WHERE org_id = $3 AND owner_id = $4 \
             AND deleted_at IS NULL AND (revoked_at IS NULL OR revoked_at > $1) RETURNING id, key_prefix",
        )
        .bind(at)
        .bind(reason)
        .bind(org_id)
        .bind(owner_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                let prefix: String = r.try_get("key_prefix")?;
                let masked = format!("{prefix}{}", id.strip_prefix("key_").unwrap_or(&id));
                Ok((id, masked))
            })
            .collect()
    }

    /// Active owners of an organization.
    pub async fn count_active_owners(&self, org_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE org_id = $1 AND role = 'owner' AND status = 'active'")
            .bind(org_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
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
        rows.iter().map(key_from_row).collect()
    }

    /// Keys that count against the organization's key limit: not deleted, not revoked.
    pub async fn count_live_keys(&self, org_id: &str, now: Millis) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM keys WHERE org_id = $1 AND deleted_at IS NULL \
             AND (revoked_at IS NULL OR revoked_at > $2)",
        )
        .bind(org_id)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
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
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores the replacement `new` and points `old` at it, revoked at `old.revoked_at`,
    /// atomically; only while `old` is still live and not yet replaced. Returns false (and stores
    /// nothing) when another change got there first.
    pub async fn rotate_key(&self, old: &Key, new: &Key, now: Millis) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
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
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_key(&mut tx, new).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes the editable settings of a live key (name, description, scopes, allowlist,
    /// metadata, enabled, rate limit). Returns false when the key was revoked or deleted meanwhile.
    pub async fn update_key_settings(&self, key: &Key, now: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET name = $1, description = $2, scopes = $3, ip_allowlist = $4, metadata = $5, \
             enabled = $6, rate_limit_requests = $7, rate_limit_per_seconds = $8, updated_at = $9 \
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
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Revokes a key at `at` unless it already stopped working by then. Returns whether it changed.
    pub async fn revoke_key(
        &self,
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
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Deletes (and, if still live, revokes) a key at `at`. Returns whether it changed.
    pub async fn delete_key(&self, org_id: &str, id: &str, at: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET deleted_at = $1, updated_at = $1, \
             revoke_reason = CASE WHEN revoked_at IS NULL OR revoked_at > $1 THEN 'deleted' ELSE revoke_reason END, \
             revoked_at = CASE WHEN revoked_at IS NULL OR revoked_at > $1 THEN $1 ELSE revoked_at END \
             WHERE id = $2 AND org_id = $3 AND deleted_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .bind(org_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// Marks a key exposed, once. Returns whether this call marked it. The key's version
    /// (`updated_at`) moves forward, so that other instances following changes see it.
    pub async fn mark_key_exposed(&self, id: &str, at: Millis) -> Result<bool> {
        let changed = sqlx::query(
            "UPDATE keys SET exposed_at = $1, \
             updated_at = CASE WHEN updated_at < $1 THEN $1 ELSE updated_at + 1 END \
             WHERE id = $2 AND exposed_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
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

    // ---------------------------------------------------------------- audit log

    /// Appends an event. There is no update or delete.
    pub async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
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
        .execute(&self.pool)
        .await?;
        Ok(())
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

/// A query assembled from optional clauses, numbering its `$N` parameters in order.
struct Sql {
    text: String,
    args: usize,
}

impl Sql {
    fn new(text: String, args: usize) -> Self {
        Sql { text, args }
    }

    fn arg(&mut self) -> String {
        self.args += 1;
        format!("${}", self.args)
    }

    fn push(&mut self, s: &str) {
        self.text.push_str(s);
    }
}

// -------------------------------------------------------------------- inserts

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

fn unique(err: sqlx::Error, what: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(err),
    }
}

async fn insert_user(tx: &mut Tx<'_>, u: &User, password_hash: Option<&str>) -> Result<()> {
    sqlx::query(
        "INSERT INTO users (id, org_id, email, name, role, status, password_hash, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&u.id)
    .bind(&u.org_id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(u.role.as_str())
    .bind(u.status.as_str())
    .bind(password_hash)
    .bind(u.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique(e, "a member with this email"))?;
    Ok(())
}

async fn insert_api(tx: &mut Tx<'_>, a: &Api) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO apis ({API_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&a.id)
    .bind(&a.org_id)
    .bind(&a.name)
    .bind(&a.slug)
    .bind(&a.prefix_live)
    .bind(&a.prefix_test)
    .bind(to_json(&a.scopes))
    .bind(to_json(&a.token_types))
    .bind(i64::from(a.accept_x_api_key))
    .bind(a.default_rate_limit.map(|r| to_json(&r)))
    .bind(&a.upstream)
    .bind(to_json(&a.routes))
    .bind(a.created_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| unique(e, "an API with this slug"))?;
    Ok(())
}

fn nets_to_strings(key: &Key) -> Vec<String> {
    key.ip_allowlist.iter().map(|n| n.to_string()).collect()
}

async fn insert_key(tx: &mut Tx<'_>, k: &Key) -> Result<()> {
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
         $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34)"
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
    .execute(&mut **tx)
    .await
    .map_err(|e| unique(e, "a key with this id"))?;
    Ok(())
}

// -------------------------------------------------------------------- row mapping

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

fn org_from_row(r: &AnyRow) -> Result<Org> {
    Ok(Org {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        plan: r.try_get("plan")?,
        api_access: r.try_get::<i64, _>("api_access")? != 0,
        billing_status: r.try_get("billing_status")?,
        policies: from_json(&r.try_get::<String, _>("policies")?)?,
        created_at: r.try_get("created_at")?,
    })
}

fn user_from_row(r: &AnyRow) -> Result<User> {
    let role: String = r.try_get("role")?;
    let status: String = r.try_get("status")?;
    Ok(User {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        status: UserStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: r.try_get("created_at")?,
    })
}

fn api_from_row(r: &AnyRow) -> Result<Api> {
    let rl: Option<String> = r.try_get("default_rate_limit")?;
    Ok(Api {
        id: r.try_get("id")?,
        org_id: r.try_get("org_id")?,
        name: r.try_get("name")?,
        slug: r.try_get("slug")?,
        prefix_live: r.try_get("prefix_live")?,
        prefix_test: r.try_get("prefix_test")?,
        scopes: from_json(&r.try_get::<String, _>("scopes")?)?,
        token_types: from_json(&r.try_get::<String, _>("token_types")?)?,
        accept_x_api_key: r.try_get::<i64, _>("accept_x_api_key")? != 0,
        default_rate_limit: rl.map(|s| from_json::<RateLimit>(&s)).transpose()?,
        upstream: r.try_get("upstream")?,
        routes: from_json(&r.try_get::<String, _>("routes")?)?,
        created_at: r.try_get("created_at")?,
    })
}

fn key_from_row(r: &AnyRow) -> Result<Key> {
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
    })
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

// Keep the pool options type referenced for the backend modules.
pub(crate) fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
}
