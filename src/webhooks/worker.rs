//! The background work of webhooks: delivering due messages, raising expiry notices from a
//! periodic scan, and raising quota notices for the keys verifications used.

use std::time::Duration;

use serde_json::Value;

use super::model::{Attempt, Claimed, Outcome, Webhook};
use super::net::{self, Unreachable};
use super::signer::SecretBox;
use super::{next_attempt, raise_with};
use crate::domain::model::Millis;
use crate::http::views::KeyView;
use crate::service::Ctx;
use crate::store::StoreError;

/// How often the worker looks for due messages when nothing wakes it.
pub const POLL: Duration = Duration::from_millis(500);
/// How often (by the service's clock) keys are scanned for expiry notices.
pub const EXPIRY_SCAN_EVERY: Millis = 60_000;
/// Messages one worker claims at a time (delivered concurrently).
const BATCH: i64 = 16;
/// Bytes of a receiver's answer kept in the delivery log.
pub const EXCERPT_MAX: usize = 256;
const DAY: Millis = 86_400_000;
/// The expiry notices, tightest first: a key first seen within 7 days of its expiry raises the
/// 7-day notice only, not the 30-day one as well.
const NOTICES: [(&str, Millis); 3] = [("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY)];

/// Runs until `stop` turns true: delivers what is due, scans for expiring keys every minute of
/// the service's clock, and looks at the quotas verifications used.
pub async fn run(ctx: Ctx, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut scanned_at: Option<Millis> = None;
    loop {
        if let Err(e) = deliver_due(&ctx).await {
            tracing::warn!(error = %e, "could not deliver webhooks; will retry");
        }
        let now = ctx.now();
        if scanned_at.is_none_or(|t| now - t >= EXPIRY_SCAN_EVERY || now < t) {
            match scan_expiry(&ctx).await {
                Ok(_) => scanned_at = Some(now),
                Err(e) => tracing::warn!(error = %e, "could not scan keys for expiry notices"),
            }
        }
        if let Err(e) = check_quotas(&ctx).await {
            tracing::warn!(error = %e, "could not raise quota notices");
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = ctx.webhooks.woken() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Claims and delivers due messages, a batch at a time, until none is due. Returns how many
/// attempts were made.
pub async fn deliver_due(ctx: &Ctx) -> Result<usize, StoreError> {
    let mut made = 0;
    loop {
        let now = ctx.now();
        let timeout = ctx.webhooks.settings.timeout;
        // Long enough for a whole attempt; a worker that dies holding a lease delays its messages
        // by this much, never loses them.
        let lease = 2 * i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX / 4) + 30_000;
        let token = crate::domain::new_id("lease");
        let claimed = ctx
            .store
            .claim_due_messages(now, now + lease, &token, BATCH)
            .await?;
        if claimed.is_empty() {
            return Ok(made);
        }
        made += claimed.len();
        let mut attempts = tokio::task::JoinSet::new();
        for (message, hook) in claimed {
            let ctx = ctx.clone();
            attempts.spawn(async move {
                let outcome = attempt(&ctx, &message, &hook).await;
                match ctx.store.finish_attempt(&message, &outcome).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!(
                        message = %message.message.id,
                        "a webhook attempt outlived its lease; its outcome is not recorded"
                    ),
                    Err(e) => tracing::error!(
                        error = %e, message = %message.message.id,
                        "could not record a webhook attempt; it will be made again"
                    ),
                }
            });
        }
        while attempts.join_next().await.is_some() {}
    }
}

/// Makes one attempt at delivering a claimed message and says what to do next.
async fn attempt(ctx: &Ctx, claimed: &Claimed, hook: &Webhook) -> Outcome {
    let m = &claimed.message;
    let started = ctx.now();
    let timer = std::time::Instant::now();
    let result = send(ctx, hook, &m.id, &m.payload).await;
    let finished = ctx.now().max(started);
    let number = m.attempts + 1;
    let (status, error, excerpt) = match result {
        Ok((status, excerpt)) => (Some(i64::from(status)), None, excerpt),
        Err(why) => (None, Some(why), None),
    };
    let delivered = status.is_some_and(|s| (200..300).contains(&s));
    let error = match (delivered, status, error) {
        (false, Some(s), None) => Some(format!("the receiver answered {s}")),
        (_, _, e) => e,
    };
    Outcome {
        attempt: Attempt {
            message_id: m.id.clone(),
            attempt: number,
            at: started,
            duration_ms: i64::try_from(timer.elapsed().as_millis()).unwrap_or(i64::MAX),
            response_status: status,
            error,
            response_excerpt: excerpt,
        },
        next_attempt_at: if delivered {
            None
        } else {
            next_attempt(finished, number - m.schedule_base)
        },
        delivered,
    }
}

/// Posts the signed message; the receiver's status and an excerpt of its answer, or why nothing
/// was answered (never the secret, never more of the URL than the rule it broke).
async fn send(
    ctx: &Ctx,
    hook: &Webhook,
    msg_id: &str,
    body: &str,
) -> Result<(u16, Option<String>), String> {
    let settings = ctx.webhooks.settings;
    let url = net::check_url(&hook.url).map_err(|why| format!("the URL {why}"))?;
    let addrs = net::resolve(&url, settings.allow_private)
        .await
        .map_err(|e| match e {
            Unreachable::NoAddress => e.to_string(),
            Unreachable::Private => e.to_string(),
        })?;
    let secret = SecretBox::new(ctx.verifier.peppers())
        .open(&hook.secret_sealed, hook.secret_pepper_version, &hook.id)
        .ok_or_else(|| {
            "the signing secret cannot be opened with the configured peppers".to_owned()
        })?;
    // The receiver checks the timestamp against its own clock: the real time, whatever clock
    // schedules the attempts.
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let signature = secret.sign(msg_id, timestamp, body);
    let mut client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("Keyward-Webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str() {
        // Connect to the addresses just checked, not to what a second lookup might return.
        client = client.resolve_to_addrs(host, &addrs);
    }
    let client = client
        .build()
        .map_err(|_| "could not set up the HTTP client".to_owned())?;
    let mut res = client
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} ms", settings.timeout.as_millis())
            } else if e.is_connect() {
                "could not connect to the receiver".to_owned()
            } else {
                "the request to the receiver failed".to_owned()
            }
        })?;
    let status = res.status().as_u16();
    let mut excerpt = Vec::new();
    while excerpt.len() < EXCERPT_MAX {
        match res.chunk().await {
            Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
            _ => break,
        }
    }
    excerpt.truncate(EXCERPT_MAX);
    let excerpt = String::from_utf8_lossy(&excerpt)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect::<String>();
    Ok((status, (!excerpt.is_empty()).then_some(excerpt)))
}

/// Raises `key.expiring` at 30, 7 and 1 days before a key's expiry and `key.expired` once it
/// has expired (within a day), each once per key, for organizations with an enabled endpoint.
/// Returns how many notices were raised.
pub async fn scan_expiry(ctx: &Ctx) -> Result<usize, StoreError> {
    let now = ctx.now();
    let keys = ctx
        .store
        .keys_expiring_between(now - DAY, now + 30 * DAY)
        .await?;
    let mut raised = 0;
    for key in keys {
        let Some(expires_at) = key.expires_at else {
            continue;
        };
        let (event, notice, wider): (&str, &str, &[(&str, Millis)]) = if expires_at <= now {
            ("key.expired", "expired", &NOTICES)
        } else {
            let left = expires_at - now;
            let Some(i) = NOTICES.iter().position(|(_, within)| left <= *within) else {
                continue;
            };
            ("key.expiring", NOTICES[i].0, &NOTICES[i + 1..])
        };
        let mut tx = ctx.store.begin().await?;
        if !tx.record_expiry_notice(&key.id, notice, now).await? {
            continue;
        }
        // The wider notices are past: never raised late.
        for (wide, _) in wider {
            tx.record_expiry_notice(&key.id, wide, now).await?;
        }
        raise_with(&mut tx, &key.org_id, event, now, async |_| {
            Ok(Some(
                serde_json::to_value(KeyView::new(&key, now)).expect("a key view serializes"),
            ))
        })
        .await?;
        tx.commit().await?;
        raised += 1;
    }
    if raised > 0 {
        ctx.webhooks.wake();
    }
    Ok(raised)
}

/// Raises `key.quota_low` (10% of the refill amount, or of the first quota, left) and
/// `key.quota_exhausted` once per crossing for the keys verifications used since the last call;
/// a refill above the threshold arms them again.
pub async fn check_quotas(ctx: &Ctx) -> Result<usize, StoreError> {
    let seen = ctx.webhooks.take_quota_seen();
    let mut raised = 0;
    for (key_id, org_id) in seen {
        let now = ctx.now();
        let mut tx = ctx.store.begin().await?;
        let Some(key) = tx.get_key(&key_id).await? else {
            continue;
        };
        let Some(quota) = key.quota else { continue };
        let notices = tx.quota_notices(&key_id).await?;
        let base = quota.refill.map(|r| r.amount).or(notices.base);
        let low = base.is_some_and(|b| quota.remaining.saturating_mul(10) <= b);
        let exhausted = quota.remaining == 0;
        let data =
            || Some(serde_json::to_value(KeyView::new(&key, now)).expect("a key view serializes"));
        let mut events: Vec<&str> = Vec::new();
        if low && tx.flip_quota_notice(&key_id, false, false, true).await? {
            events.push("key.quota_low");
        }
        if !low && notices.low_sent {
            tx.flip_quota_notice(&key_id, false, true, false).await?;
        }
        if exhausted && tx.flip_quota_notice(&key_id, true, false, true).await? {
            events.push("key.quota_exhausted");
        }
        if !exhausted && notices.exhausted_sent {
            tx.flip_quota_notice(&key_id, true, true, false).await?;
        }
        for event in events {
            let data: Option<Value> = data();
            raised += raise_with(&mut tx, &org_id, event, now, async |_| Ok(data)).await?;
        }
        tx.commit().await?;
    }
    if raised > 0 {
        ctx.webhooks.wake();
    }
    Ok(raised)
}
