//! PostgreSQL: for several `keyward serve` processes sharing one database.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::migrate::Migrator;

pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub async fn pool(url: &str) -> Result<AnyPool, sqlx::Error> {
    super::pool_options()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        .connect(url)
        .await
}
