//! Reading usage: an organization's or one key's counts over a range, as totals, by code, by key
//! and as a series with a point for every bucket (empty ones included), for the usage endpoints,
//! the CLI (through them) and the dashboard.

use std::collections::{BTreeMap, HashMap};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::config::UsageSettings;
use crate::domain::model::Millis;
use crate::domain::validate::Errors;
use crate::service::{Caller, Ctx, Result, ServiceError, authz};
use crate::store::{Granularity, UsageQuery};

/// Most points one series may have: 24 hours by minute, 60 days by hour, about four years by day.
pub const MAX_BUCKETS: i64 = 1_440;
/// Most keys a report lists (those with the most verifications).
pub const TOP_KEYS: i64 = 100;

/// The default length of a range, in buckets: the last hour by minute, the last 24 hours by hour,
/// the last 30 days by day.
fn default_buckets(g: Granularity) -> i64 {
    match g {
        Granularity::Minute => 60,
        Granularity::Hour => 24,
        Granularity::Day => 30,
    }
}

/// What a caller asks for, as sent: each part optional.
#[derive(Debug, Clone, Default)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub granularity: Option<String>,
}

/// A range of whole buckets: `[from, to)`, both on bucket boundaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub granularity: Granularity,
    pub from: Millis,
    pub to: Millis,
}

fn parse_time(s: &str) -> Option<Millis> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// A duration for people: `48 hours`, `90 days`.
fn span_text(ms: i64) -> String {
    let hours = ms / 3_600_000;
    if hours % 24 == 0 {
        format!("{} days", hours / 24)
    } else if hours > 0 {
        format!("{hours} hours")
    } else {
        format!("{} minutes", ms / 60_000)
    }
}

impl Range {
    /// The range `q` asks for at `now`: by default the last 24 hours by hour. `from` is rounded
    /// down and `to` up to their buckets, so that every bucket is whole. A range must end after
    /// it starts, hold at most [`MAX_BUCKETS`] buckets, and an explicit `from` must lie within
    /// the retention of its granularity (older counts are gone).
    pub fn parse(
        q: &RangeQuery,
        now: Millis,
        settings: &UsageSettings,
    ) -> Result<Range, Vec<crate::domain::validate::FieldError>> {
        let mut e = Errors::default();
        let granularity = match q.granularity.as_deref() {
            None => Some(Granularity::Hour),
            Some(s) => Granularity::parse(s).or_else(|| {
                e.add("granularity", "must be one of minute, hour, day");
                None
            }),
        };
        let mut time = |field: &str, value: &Option<String>| match value.as_deref() {
            None => Ok(None),
            Some(s) => parse_time(s).map(Some).ok_or_else(|| {
                e.add(
                    field,
                    "must be an RFC 3339 time with a time zone, like 2026-01-31T00:00:00Z",
                );
            }),
        };
        let from = time("from", &q.from);
        let to = time("to", &q.to);
        let (Some(g), Ok(from), Ok(to)) = (granularity, from, to) else {
            return Err(e.0);
        };
        let len = g.millis();
        let to_ms = match to {
            Some(t) => g.ceil(t),
            None => g.floor(now) + len,
        };
        let from_ms = match from {
            Some(t) => g.floor(t),
            None => to_ms - default_buckets(g) * len,
        };
        if from_ms >= to_ms {
            e.add("to", "must be after 'from'");
            return Err(e.0);
        }
        let buckets = (to_ms - from_ms) / len;
        if buckets > MAX_BUCKETS {
            e.add(
                "from",
                format!(
                    "the range holds {buckets} {}s; at most {MAX_BUCKETS} are allowed (24 hours \
                     by minute, 60 days by hour, about 4 years by day)",
                    g.as_str()
                ),
            );
            return Err(e.0);
        }
        let kept = settings.retention(g).as_millis() as i64;
        if from.is_some() && from_ms < g.floor(now - kept) {
            e.add(
                "from",
                format!(
                    "counts by {} are kept for {}; ask for a later 'from' or a coarser granularity",
                    g.as_str(),
                    span_text(kept)
                ),
            );
            return Err(e.0);
        }
        Ok(Range {
            granularity: g,
            from: from_ms,
            to: to_ms,
        })
    }

    /// The start of every bucket of the range.
    pub fn buckets(&self) -> impl Iterator<Item = Millis> + use<> {
        let len = self.granularity.millis();
        let from = self.from;
        (0..(self.to - self.from) / len).map(move |i| from + i * len)
    }
}

/// Verifications counted: all, valid, and by code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub requests: i64,
    pub valid: i64,
    /// Only codes that occurred.
    pub by_code: BTreeMap<String, i64>,
}

impl Counts {
    pub fn refused(&self) -> i64 {
        self.requests - self.valid
    }

    fn add(&mut self, code: &str, n: i64) {
        self.requests += n;
        if code == "VALID" {
            self.valid += n;
        }
        *self.by_code.entry(code.to_owned()).or_default() += n;
    }
}

/// One key's line in an organization's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLine {
    pub key_id: String,
    pub prefix: String,
    pub requests: i64,
    pub valid: i64,
    pub last_used_at: Option<Millis>,
}

/// Usage over a range: of the caller's organization (`keys` listed), or of one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub range: Range,
    /// The key reported on, for a key's report.
    pub key_id: Option<String>,
    pub totals: Counts,
    /// The keys with the most verifications, most first (an organization's report only).
    pub keys: Option<Vec<KeyLine>>,
    /// One point per bucket of the range, empty ones included.
    pub series: Vec<(Millis, Counts)>,
}

async fn report(ctx: &Ctx, org_id: &str, key_id: Option<&str>, range: Range) -> Result<Report> {
    let q = UsageQuery {
        org_id,
        key_id,
        granularity: range.granularity,
        from: range.from,
        to: range.to,
    };
    let rows = ctx.store.usage_series(&q).await?;
    let mut totals = Counts::default();
    let mut by_bucket: HashMap<Millis, Counts> = HashMap::new();
    for (bucket, code, n) in &rows {
        totals.add(code, *n);
        by_bucket.entry(*bucket).or_default().add(code, *n);
    }
    let series = range
        .buckets()
        .map(|b| (b, by_bucket.remove(&b).unwrap_or_default()))
        .collect();
    let keys = match key_id {
        Some(_) => None,
        None => Some(
            ctx.store
                .usage_by_key(&q, TOP_KEYS)
                .await?
                .into_iter()
                .map(|row| {
                    // A use not yet written behind is newer than what storage holds.
                    let pending = ctx.verifier.pending_touch(&row.key_id).map(|(at, _)| at);
                    KeyLine {
                        last_used_at: row.last_used_at.max(pending),
                        key_id: row.key_id,
                        prefix: row.prefix,
                        requests: row.requests,
                        valid: row.valid,
                    }
                })
                .collect(),
        ),
    };
    Ok(Report {
        range,
        key_id: key_id.map(str::to_owned),
        totals,
        keys,
        series,
    })
}

fn range(ctx: &Ctx, q: &RangeQuery) -> Result<Range> {
    Range::parse(q, ctx.now(), ctx.usage.settings()).map_err(ServiceError::Validation)
}

/// The usage of the caller's organization.
pub async fn org_usage(ctx: &Ctx, caller: &Caller, q: &RangeQuery) -> Result<Report> {
    caller.require(authz::READ_USAGE)?;
    let range = range(ctx, q)?;
    report(ctx, &caller.org_id, None, range).await
}

/// The usage of one key of the caller's organization (a deleted key's too: its history stays).
pub async fn key_usage(ctx: &Ctx, caller: &Caller, key_id: &str, q: &RangeQuery) -> Result<Report> {
    caller.require(authz::READ_USAGE)?;
    let range = range(ctx, q)?;
    let key = ctx
        .store
        .get_key_in_org(&caller.org_id, key_id)
        .await?
        .ok_or(ServiceError::NotFound("key"))?;
    report(ctx, &caller.org_id, Some(&key.id), range).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_764_900_000_000 + 1_234; // 2025-12-05T02:00:01.234Z

    fn parse(from: Option<&str>, to: Option<&str>, g: Option<&str>) -> Result<Range, Vec<String>> {
        let q = RangeQuery {
            from: from.map(Into::into),
            to: to.map(Into::into),
            granularity: g.map(Into::into),
        };
        Range::parse(&q, NOW, &UsageSettings::default()).map_err(|e| {
            e.into_iter()
                .map(|f| format!("{}: {}", f.field, f.message))
                .collect()
        })
    }

    #[test]
    fn the_default_is_the_last_24_hours_by_hour_ending_with_the_current_one() {
        let r = parse(None, None, None).unwrap();
        assert_eq!(r.granularity, Granularity::Hour);
        assert_eq!(r.to, Granularity::Hour.floor(NOW) + 3_600_000);
        assert_eq!(r.to - r.from, 24 * 3_600_000);
        assert_eq!(r.buckets().count(), 24);
        let r = parse(None, None, Some("minute")).unwrap();
        assert_eq!(r.buckets().count(), 60);
    }

    #[test]
    fn times_are_rounded_out_to_whole_buckets() {
        let r = parse(
            Some("2025-12-05T00:30:00Z"),
            Some("2025-12-05T01:00:00.001Z"),
            None,
        )
        .unwrap();
        assert_eq!(r.from, parse_time("2025-12-05T00:00:00Z").unwrap());
        assert_eq!(r.to, parse_time("2025-12-05T02:00:00Z").unwrap());
    }

    #[test]
    fn bad_parts_are_named_with_what_is_expected() {
        let e = parse(Some("yesterday"), Some("2025-13-01"), Some("week")).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("granularity: must be one of"), "{e:?}");
        assert!(e[1].starts_with("from: must be an RFC 3339 time"), "{e:?}");
        assert!(e[2].starts_with("to: must be an RFC 3339 time"), "{e:?}");
        let e = parse(
            Some("2025-12-05T01:00:00Z"),
            Some("2025-12-05T01:00:00Z"),
            None,
        );
        assert_eq!(e.unwrap_err(), ["to: must be after 'from'"]);
        let e = parse(Some("2025-12-01T00:00:00Z"), None, Some("minute")).unwrap_err();
        assert!(e[0].contains("at most 1440"), "{e:?}");
        let e = parse(
            Some("2025-12-01T00:00:00Z"),
            Some("2025-12-01T01:00:00Z"),
            Some("minute"),
        )
        .unwrap_err();
        assert!(e[0].contains("kept for 2 days"), "{e:?}");
    }
}
