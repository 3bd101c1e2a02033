//! Storage: one SQL implementation over `sqlx`'s `Any` driver, for SQLite (embedded default) and
//! PostgreSQL. The SQL is the portable subset both understand (`$N` parameters, `RETURNING`,
//! `ON CONFLICT`); what differs per backend (connection setup, migrations) lives in `sqlite.rs`
//! and `postgres.rs`. Times are BIGINT Unix milliseconds, lists and objects are JSON text.
//!
//! Every query that reads or changes tenant data is scoped by organization; the only unscoped
//! lookup is by a key's hash or public id, which the verifier needs before it knows the tenant.
//!
//! A change and its audit events are written through one [`StoreTx`] and committed together, so
//! that no change lands without its record and no record without its change. One file per
//! aggregate holds its SQL, as `impl Store` (reads, and single changes made on their own) and
//! `impl StoreTx` (writes inside a unit of work).

mod access;
mod apis;
mod audit;
mod events;
mod keys;
mod orgs;
mod postgres;
mod sessions;
mod sqlite;
mod usage;
mod users;
mod webhooks;

pub use access::LinkKind;
pub use audit::AuditFilter;
pub use events::EventFilter;
pub use keys::{KeyFilter, KeyOrder, KeySort, StatusFilter, UsageTouch};
pub use sessions::{Failures, SessionRecord, SetupTokenRecord};
pub use usage::{Granularity, KeyUsageRow, UsageCount, UsageQuery};
pub use webhooks::{ATTEMPTS_KEPT, QuotaNotices};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool};

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

/// The handle to the database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

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

    /// Starts a unit of work: nothing it writes is seen by others, or stays, until
    /// [`StoreTx::commit`]; dropped uncommitted, it rolls back.
    ///
    /// Use only the transaction until it ends: a second connection taken from the pool meanwhile
    /// can wait for one that waits for this transaction's locks.
    pub async fn begin(&self) -> Result<StoreTx> {
        let tx = match self.backend {
            // SQLite allows one writer. A deferred transaction that reads and then writes fails
            // with SQLITE_BUSY, without waiting, when another writer committed in between; an
            // immediate one takes the write lock first and waits for it (busy timeout) instead.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(StoreTx {
            tx,
            audited: Vec::new(),
        })
    }

    /// Starts a unit of work that first locks the organization's row, so that the changes of one
    /// organization that check a rule before they write (its key limit, its last owner) run one
    /// after another and each sees what the one before committed. Changes that only write, and
    /// other organizations, are not held up.
    pub async fn begin_for_org(&self, org_id: &str) -> Result<StoreTx> {
        let mut tx = self.begin().await?;
        // A write, not a read: PostgreSQL keeps the row locked until the transaction ends
        // (like SELECT ... FOR UPDATE), which SQLite's write lock already does for everything.
        sqlx::query("UPDATE orgs SET id = id WHERE id = $1")
            .bind(org_id)
            .execute(tx.conn())
            .await?;
        Ok(tx)
    }
}

/// One unit of work: the writes of one change and its audit events, committed together or not
/// at all. See [`Store::begin`].
pub struct StoreTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    /// Action, target and organization of each audit event appended, logged once committed.
    audited: Vec<(String, Option<String>, String)>,
}

impl std::fmt::Debug for StoreTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreTx")
            .field("audited", &self.audited)
            .finish_non_exhaustive()
    }
}

impl StoreTx {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Makes every write of the unit of work durable and visible at once.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        for (action, target, org) in &self.audited {
            tracing::info!(action, target, org, "audit");
        }
        Ok(())
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

// -------------------------------------------------------------------- shared helpers

fn unique(err: sqlx::Error, what: &'static str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(err),
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serializes")
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

// Keep the pool options type referenced for the backend modules.
pub(crate) fn pool_options() -> AnyPoolOptions {
    AnyPoolOptions::new()
}
