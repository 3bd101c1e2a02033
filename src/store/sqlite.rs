//! SQLite: the embedded default. One file, WAL journal, foreign keys on, a busy timeout so that
//! concurrent writers wait instead of failing.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub async fn pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    let url = if url.contains('?') || url.contains(":memory:") {
        url.to_owned()
    } else {
        format!("{url}?mode=rwc")
    };
    super::pool_options()
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
                )
                .await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
}
