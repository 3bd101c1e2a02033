//! Usage counts: verifications per key (or per organization, for those no key could be attributed
//! to) per minute, hour and day, by verdict code. Counts are added, never overwritten, so that
//! several instances writing the same rows add up; each batch is written once (see
//! [`Store::add_usage`]).

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Backend, Result, Store};
use crate::domain::model::Millis;

/// The resolution of stored counts and of a usage series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    Minute,
    Hour,
    Day,
}

impl Granularity {
    pub const ALL: [Granularity; 3] = [Granularity::Minute, Granularity::Hour, Granularity::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Minute => "minute",
            Granularity::Hour => "hour",
            Granularity::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Granularity> {
        Granularity::ALL.into_iter().find(|g| g.as_str() == s)
    }

    /// The length of one bucket, in milliseconds (days are UTC days).
    pub fn millis(self) -> i64 {
        match self {
            Granularity::Minute => 60_000,
            Granularity::Hour => 3_600_000,
            Granularity::Day => 86_400_000,
        }
    }

    /// The start of the bucket holding `t`.
    pub fn floor(self, t: Millis) -> Millis {
        t - t.rem_euclid(self.millis())
    }

    /// `t` if it starts a bucket, else the start of the next one.
    pub fn ceil(self, t: Millis) -> Millis {
        let floor = self.floor(t);
        if floor == t { t } else { floor + self.millis() }
    }

    fn table(self) -> &'static str {
        match self {
            Granularity::Minute => "usage_minutes",
            Granularity::Hour => "usage_hours",
            Granularity::Day => "usage_days",
        }
    }
}

/// Verifications to add to one minute's count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageCount {
    pub org_id: String,
    /// `""` when no key was identified.
    pub key_id: String,
    /// The start of the minute.
    pub minute: Millis,
    pub code: &'static str,
    pub count: i64,
}

/// What [`Store::usage_series`] and [`Store::usage_by_key`] read: an organization's counts, or
/// one key's, at a granularity, for buckets starting in `[from, to)`.
#[derive(Debug, Clone, Copy)]
pub struct UsageQuery<'a> {
    pub org_id: &'a str,
    pub key_id: Option<&'a str>,
    pub granularity: Granularity,
    pub from: Millis,
    pub to: Millis,
}

/// One key's counts over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUsageRow {
    pub key_id: String,
    /// The key's prefix and public id (`kw_live_3f9a0c1e7b2d`).
    pub prefix: String,
    pub last_used_at: Option<Millis>,
    pub requests: i64,
    pub valid: i64,
}

/// Rows per multi-row statement: 5 parameters each, under SQLite's oldest limit of 999.
const ROWS: usize = 150;

impl Store {
    /// Adds a batch of per-minute counts to the minute, hour and day rows, in one transaction,
    /// recorded under `batch_id`. Returns `false`, adding nothing, when that batch was written
    /// already: a batch whose commit failed ambiguously can be retried safely.
    pub async fn add_usage(
        &self,
        batch_id: &str,
        counts: &[UsageCount],
        now: Millis,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let claimed = sqlx::query(
            "INSERT INTO usage_batches (id, written_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(batch_id)
        .bind(now)
        .execute(tx.conn())
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(false);
        }
        for granularity in Granularity::ALL {
            // Summed per row of this granularity, in key order: one statement never touches a row
            // twice (PostgreSQL refuses that), and instances writing at once lock rows in the same
            // order, so they wait for each other instead of deadlocking.
            let mut rows: BTreeMap<(&str, Millis, &str, &str), i64> = BTreeMap::new();
            for c in counts {
                *rows
                    .entry((
                        c.org_id.as_str(),
                        granularity.floor(c.minute),
                        c.key_id.as_str(),
                        c.code,
                    ))
                    .or_default() += c.count;
            }
            let rows: Vec<_> = rows.into_iter().collect();
            for chunk in rows.chunks(ROWS) {
                let table = granularity.table();
                let mut sql =
                    format!("INSERT INTO {table} (org_id, bucket, key_id, code, count) VALUES ");
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push_str(", ");
                    }
                    match self.backend {
                        // Anonymous parameters: SQLite finds each named one by a linear search.
                        Backend::Sqlite => sql.push_str("(?, ?, ?, ?, ?)"),
                        Backend::Postgres => {
                            let n = i * 5;
                            sql.push_str(&format!(
                                "(${}, ${}, ${}, ${}, ${})",
                                n + 1,
                                n + 2,
                                n + 3,
                                n + 4,
                                n + 5
                            ));
                        }
                    }
                }
                sql.push_str(&format!(
                    " ON CONFLICT (org_id, bucket, key_id, code) \
                     DO UPDATE SET count = {table}.count + excluded.count"
                ));
                let mut q = sqlx::query(&sql);
                for ((org, bucket, key, code), count) in chunk {
                    q = q
                        .bind(*org)
                        .bind(*bucket)
                        .bind(*key)
                        .bind(*code)
                        .bind(*count);
                }
                q.execute(tx.conn()).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Counts by bucket and code, in bucket order.
    pub async fn usage_series(&self, q: &UsageQuery<'_>) -> Result<Vec<(Millis, String, i64)>> {
        let table = q.granularity.table();
        let rows = match q.key_id {
            Some(key_id) => {
                sqlx::query(&format!(
                    "SELECT bucket, code, CAST(SUM(count) AS BIGINT) AS n FROM {table} \
                     WHERE key_id = $1 AND org_id = $2 AND bucket >= $3 AND bucket < $4 \
                     GROUP BY bucket, code ORDER BY bucket, code"
                ))
                .bind(key_id)
                .bind(q.org_id)
                .bind(q.from)
                .bind(q.to)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT bucket, code, CAST(SUM(count) AS BIGINT) AS n FROM {table} \
                     WHERE org_id = $1 AND bucket >= $2 AND bucket < $3 \
                     GROUP BY bucket, code ORDER BY bucket, code"
                ))
                .bind(q.org_id)
                .bind(q.from)
                .bind(q.to)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|r| Ok((r.try_get("bucket")?, r.try_get("code")?, r.try_get("n")?)))
            .collect()
    }

    /// The organization's keys with the most verifications in the range (at most `limit`), most
    /// first, with what the keys table says of them.
    pub async fn usage_by_key(&self, q: &UsageQuery<'_>, limit: i64) -> Result<Vec<KeyUsageRow>> {
        let table = q.granularity.table();
        let rows = sqlx::query(&format!(
            "SELECT t.key_id, k.key_prefix, k.last_used_at, t.requests, t.valid FROM ( \
                 SELECT key_id, CAST(SUM(count) AS BIGINT) AS requests, \
                        CAST(SUM(CASE WHEN code = 'VALID' THEN count ELSE 0 END) AS BIGINT) AS valid \
                 FROM {table} WHERE org_id = $1 AND bucket >= $2 AND bucket < $3 AND key_id <> '' \
                 GROUP BY key_id ORDER BY requests DESC, key_id LIMIT $4 \
             ) t JOIN keys k ON k.id = t.key_id AND k.org_id = $1 \
             ORDER BY t.requests DESC, t.key_id"
        ))
        .bind(q.org_id)
        .bind(q.from)
        .bind(q.to)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let key_id: String = r.try_get("key_id")?;
                let key_prefix: String = r.try_get("key_prefix")?;
                let public = key_id.strip_prefix("key_").unwrap_or(&key_id);
                Ok(KeyUsageRow {
                    prefix: format!("{key_prefix}{public}"),
                    last_used_at: r.try_get("last_used_at")?,
                    requests: r.try_get("requests")?,
                    valid: r.try_get("valid")?,
                    key_id,
                })
            })
            .collect()
    }

    /// Deletes the counts of each granularity whose bucket starts before its cutoff, and the
    /// records of batches written before `batches_before`. Returns the rows deleted.
    pub async fn prune_usage(
        &self,
        before: [(Granularity, Millis); 3],
        batches_before: Millis,
    ) -> Result<u64> {
        let mut deleted = 0;
        for (granularity, cutoff) in before {
            deleted += sqlx::query(&format!(
                "DELETE FROM {} WHERE bucket < $1",
                granularity.table()
            ))
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        deleted += sqlx::query("DELETE FROM usage_batches WHERE written_at < $1")
            .bind(batches_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_start_on_utc_boundaries() {
        let t = 1_700_000_123_456;
        assert_eq!(Granularity::Minute.floor(t), 1_700_000_100_000);
        assert_eq!(Granularity::Hour.floor(t), 1_699_999_200_000);
        assert_eq!(Granularity::Day.floor(t), 1_699_920_000_000);
        assert_eq!(Granularity::Minute.ceil(t), 1_700_000_160_000);
        assert_eq!(Granularity::Hour.ceil(1_699_999_200_000), 1_699_999_200_000);
        assert_eq!(Granularity::parse("hour"), Some(Granularity::Hour));
        assert_eq!(Granularity::parse("week"), None);
    }
}
