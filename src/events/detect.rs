//! The detectors fed by verdicts: `auth_failures`, `new_ip`, `usage_spike` and
//! `grace_period_use`.
//!
//! [`Detector::observe`] runs on the request's task: it only counts in memory, under one short
//! lock, and never waits for storage. [`Detector::flush`] does the I/O in the background: it
//! stores new events, brings the counts of events still growing up to date, loads and writes the
//! networks each key was used from, and forgets what no longer matters.
//!
//! **One burst, one event.** What a detector finds opens an *incident* about one subject (a
//! client address, a key, or a key and a network). While the incident is open, more of the same
//! adds to its event's `count` instead of raising another event; it closes after a quiet spell
//! (the `auth_failures` window, two minutes for spikes, the grace-use interval for old keys), and
//! in any case one hour after it began ([`MAX_BURST_MS`]), so that a long attack shows as one
//! event an hour.
//!
//! Counts are per instance and start empty at each start: several instances behind one database
//! each watch their own share of the traffic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::NewEvent;
use crate::config::EventSettings;
use crate::domain::model::{Millis, normalize_ip};
use crate::domain::security::{EventType, client_of, network_of, network_text, parse_network};
use crate::http::views::rfc3339;
use crate::observe::{Observation, Observer};
use crate::service::Ctx;
use crate::store::StoreError;
use crate::verify::CachedKey;

/// The longest one event covers: a burst still going after an hour raises a new event.
pub const MAX_BURST_MS: Millis = 3_600_000;
/// How close two spiking minutes must be to count as one spike.
const SPIKE_QUIET_MS: Millis = 120_000;
/// How often the last-seen time of a known network is written again: the `new_ip` window is
/// counted in days, so a day's precision is plenty, and a key in steady use costs one row
/// update a day per network.
const NETWORK_REWRITE_MS: Millis = 86_400_000;
/// At most this many (key, network) sightings wait for the next flush; beyond, they are dropped
/// (a flood of new networks while storage is unreachable must not exhaust memory).
const MAX_SIGHTINGS: usize = 50_000;
/// At most this many keys' networks are kept in memory; beyond, they are forgotten and read
/// again from storage when next needed.
const MAX_KEYS: usize = 100_000;
/// At most this many network rows are written per flush.
const NETWORK_BATCH: usize = 1_000;

/// The verify codes of a refused key: malformed (or missing), unknown, revoked or disabled,
/// expired, or its owner disabled; every verdict answered with 401.
pub const REFUSED_KEY_CODES: [&str; 5] = [
    "MALFORMED",
    "NOT_FOUND",
    "REVOKED",
    "EXPIRED",
    "OWNER_DISABLED",
];

/// What an incident is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Subject {
    /// A client address (IPv6: its /64) in an organization.
    Client { org: String, client: IpAddr },
    /// One key.
    Key { key_id: String },
    /// One key on one network.
    KeyNetwork { key_id: String, network: IpAddr },
}

/// An open (or closed but not yet written) incident: one event, growing.
#[derive(Debug, Clone)]
struct Incident {
    id: String,
    kind: EventType,
    org_id: String,
    key_id: Option<String>,
    prefix: Option<String>,
    ip: Option<String>,
    network: Option<IpAddr>,
    /// The key's average minute over the hour before a spike.
    average: f64,
    /// When the grace period of an old key ends.
    grace_end: Option<Millis>,
    count: i64,
    first_at: Millis,
    last_at: Millis,
    /// Whether its event is stored.
    inserted: bool,
    /// The count the stored event holds.
    written: i64,
    /// Another instance (or this one before a restart) already raised it: nothing is written.
    suppressed: bool,
}

impl Incident {
    fn dirty(&self) -> bool {
        !self.suppressed && (!self.inserted || self.written != self.count)
    }

    /// What the event says; `days` is the `new_ip` window.
    fn detail(&self, days: u64) -> String {
        let prefix = self.prefix.as_deref().unwrap_or("?");
        let ip = self.ip.as_deref().unwrap_or("an unknown address");
        let secs = ((self.last_at - self.first_at + 999) / 1000).max(1);
        match self.kind {
            EventType::AuthFailures if self.key_id.is_some() => format!(
                "{} refused verifications of key {prefix} in {secs} s",
                self.count
            ),
            EventType::AuthFailures => {
                format!("{} refused keys from {ip} in {secs} s", self.count)
            }
            EventType::NewIp => format!(
                "Key {prefix} used from {ip}, on network {} it had not used in the last {days} days",
                self.network.map(network_text).unwrap_or_default(),
            ),
            EventType::UsageSpike => format!(
                "Key {prefix} made {} requests in a spike; its average minute over the previous hour was {:.1}",
                self.count, self.average
            ),
            EventType::GracePeriodUse => format!(
                "Key {prefix}, replaced by a rotation, was used {} time(s) during its grace period, which ends {}",
                self.count,
                self.grace_end.map(rfc3339).unwrap_or_default()
            ),
            EventType::KeyExposed => format!("Key {prefix} was seen in a URL"),
        }
    }
}

/// One key's requests per minute, for `usage_spike`.
#[derive(Debug, Default)]
struct Minutes {
    minute: i64,
    count: u64,
    /// Whether this minute already raised (or added to) a spike.
    raised: bool,
    /// The requests of the previous hour's minutes, this minute excluded, once computed.
    previous_hour: Option<u64>,
    /// Earlier minutes with requests, oldest first, at most an hour back.
    history: VecDeque<(i64, u64)>,
}

/// A network a key was used from.
#[derive(Debug, Clone, Copy)]
struct NetSeen {
    /// The last use known, in memory.
    seen: Millis,
    /// The last use stored.
    written: Millis,
    /// Whether it waits in `stale_networks` to be written.
    queued: bool,
}

/// A use of a key from a network not known to be recent, waiting for the next flush.
#[derive(Debug)]
struct Sighting {
    org_id: String,
    key_id: String,
    prefix: String,
    network: IpAddr,
    ip: String,
    count: i64,
    first_at: Millis,
    last_at: Millis,
}

#[derive(Default)]
struct State {
    /// Recent refusals per subject (when, from where), at most the threshold's number, oldest
    /// first.
    refusals: HashMap<Subject, VecDeque<(Millis, Option<IpAddr>)>>,
    incidents: HashMap<(EventType, Subject), Incident>,
    /// Incidents replaced by a newer one before their last count was written.
    closed: Vec<Incident>,
    minutes: HashMap<String, Minutes>,
    /// Each key's networks, as stored plus what was seen since; only keys read from storage.
    networks: HashMap<String, HashMap<IpAddr, NetSeen>>,
    /// (key id, network) whose last use should be written.
    stale_networks: HashSet<(String, IpAddr)>,
    sightings: Vec<Sighting>,
    sighting_index: HashMap<(String, IpAddr), usize>,
}

/// The security-event detectors of this process.
pub struct Detector {
    settings: EventSettings,
    /// The minute this process started watching: a spike needs a baseline of watched minutes.
    started_minute: i64,
    state: Mutex<State>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

fn ms(d: std::time::Duration) -> Millis {
    Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX)
}

impl Detector {
    pub fn new(settings: EventSettings, now: Millis) -> Self {
        Detector {
            settings,
            started_minute: now.div_euclid(60_000),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long an incident of `kind` stays open without news.
    fn quiet_ms(&self, kind: EventType) -> Millis {
        match kind {
            EventType::AuthFailures => ms(self.settings.auth_failures_window),
            EventType::UsageSpike => SPIKE_QUIET_MS,
            EventType::GracePeriodUse => ms(self.settings.grace_use_interval),
            EventType::NewIp | EventType::KeyExposed => MAX_BURST_MS,
        }
    }

    /// How long an incident of `kind` may last at most.
    fn max_ms(&self, kind: EventType) -> Millis {
        match kind {
            EventType::GracePeriodUse => ms(self.settings.grace_use_interval),
            _ => MAX_BURST_MS,
        }
    }

    fn is_open(&self, i: &Incident, at: Millis) -> bool {
        at - i.last_at < self.quiet_ms(i.kind) && at - i.first_at < self.max_ms(i.kind)
    }

    /// Adds `delta` to the open incident of `kind` about `subject`; `false` when there is none.
    fn extend(
        &self,
        st: &mut State,
        kind: EventType,
        subject: &Subject,
        at: Millis,
        delta: i64,
    ) -> bool {
        match st.incidents.get_mut(&(kind, subject.clone())) {
            Some(i) if self.is_open(i, at) => {
                i.count += delta;
                i.last_at = i.last_at.max(at);
                true
            }
            _ => false,
        }
    }

    /// Opens a new incident, keeping the one it replaces for the next flush if need be.
    fn open(st: &mut State, subject: Subject, incident: Incident) {
        if let Some(old) = st.incidents.insert((incident.kind, subject), incident) {
            if old.dirty() {
                st.closed.push(old);
            }
        }
    }

    fn refused(
        &self,
        st: &mut State,
        org: &str,
        subject: Subject,
        at: Millis,
        ip: Option<IpAddr>,
        key: Option<&CachedKey>,
    ) {
        if self.extend(st, EventType::AuthFailures, &subject, at, 1) {
            return;
        }
        let window = ms(self.settings.auth_failures_window);
        let threshold = self.settings.auth_failures as usize;
        let times = st.refusals.entry(subject.clone()).or_default();
        times.push_back((at, ip));
        while times.front().is_some_and(|(t, _)| *t <= at - window) || times.len() > threshold {
            times.pop_front();
        }
        if times.len() < threshold {
            return;
        }
        // The event names the client of the burst's first refusal.
        let (first_at, ip) = times.front().copied().unwrap_or((at, ip));
        let count = times.len() as i64;
        st.refusals.remove(&subject);
        let incident = Incident {
            id: super::new_event_id(),
            kind: EventType::AuthFailures,
            org_id: org.to_owned(),
            key_id: key.map(|k| k.id.clone()),
            prefix: key.map(|k| k.display_prefix()),
            ip: ip.map(|ip| normalize_ip(ip).to_string()),
            network: None,
            average: 0.0,
            grace_end: None,
            count,
            first_at,
            last_at: at,
            inserted: false,
            written: 0,
            suppressed: false,
        };
        Self::open(st, subject, incident);
    }

    fn count_request(&self, st: &mut State, org: &str, key: &CachedKey, at: Millis) {
        let minute = at.div_euclid(60_000);
        // Looked up by reference: a key seen before costs no allocation.
        if !st.minutes.contains_key(&key.id) {
            st.minutes.insert(key.id.clone(), Minutes::default());
        }
        let Some(m) = st.minutes.get_mut(&key.id) else {
            return;
        };
        if m.minute != minute {
            if m.count > 0 {
                m.history.push_back((m.minute, m.count));
            }
            while m.history.front().is_some_and(|(t, _)| *t < minute - 60) {
                m.history.pop_front();
            }
            m.minute = minute;
            m.count = 0;
            m.raised = false;
            m.previous_hour = None;
        }
        m.count += 1;
        if m.count < u64::from(self.settings.spike_requests) {
            return;
        }
        let subject = Subject::Key {
            key_id: key.id.clone(),
        };
        if m.raised {
            self.extend(st, EventType::UsageSpike, &subject, at, 1);
            return;
        }
        // The baseline is the minutes this process watched, up to an hour: right after a start,
        // a busy key is not mistaken for a spiking one.
        let watched = (minute - self.started_minute).min(60);
        if watched <= 0 {
            return;
        }
        let previous = *m.previous_hour.get_or_insert_with(|| {
            m.history
                .iter()
                .filter(|(t, _)| *t >= minute - 60 && *t < minute)
                .map(|(_, n)| *n)
                .sum()
        });
        let average = previous as f64 / watched as f64;
        if m.count as f64 <= f64::from(self.settings.spike_factor) * average {
            return;
        }
        m.raised = true;
        let count = m.count as i64;
        if self.extend(st, EventType::UsageSpike, &subject, at, count) {
            return;
        }
        let incident = Incident {
            id: super::new_event_id(),
            kind: EventType::UsageSpike,
            org_id: org.to_owned(),
            key_id: Some(key.id.clone()),
            prefix: Some(key.display_prefix()),
            ip: None,
            network: None,
            average,
            grace_end: None,
            count,
            first_at: minute * 60_000,
            last_at: at,
            inserted: false,
            written: 0,
            suppressed: false,
        };
        Self::open(st, subject, incident);
    }

    fn grace_use(
        &self,
        st: &mut State,
        org: &str,
        key: &CachedKey,
        at: Millis,
        ip: Option<IpAddr>,
    ) {
        let in_grace = key.replaced_by.is_some() && key.revoked_at.is_some_and(|end| end > at);
        if !in_grace {
            return;
        }
        let subject = Subject::Key {
            key_id: key.id.clone(),
        };
        if self.extend(st, EventType::GracePeriodUse, &subject, at, 1) {
            return;
        }
        let incident = Incident {
            id: super::new_event_id(),
            kind: EventType::GracePeriodUse,
            org_id: org.to_owned(),
            key_id: Some(key.id.clone()),
            prefix: Some(key.display_prefix()),
            ip: ip.map(|ip| normalize_ip(ip).to_string()),
            network: None,
            average: 0.0,
            grace_end: key.revoked_at,
            count: 1,
            first_at: at,
            last_at: at,
            inserted: false,
            written: 0,
            suppressed: false,
        };
        Self::open(st, subject, incident);
    }

    fn network_use(&self, st: &mut State, org: &str, key: &CachedKey, at: Millis, ip: IpAddr) {
        let network = network_of(ip);
        let window = ms(self.settings.new_ip_window);
        if let Some(seen) = st
            .networks
            .get_mut(&key.id)
            .and_then(|nets| nets.get_mut(&network))
        {
            if at - seen.seen < window {
                seen.seen = seen.seen.max(at);
                if seen.seen - seen.written >= NETWORK_REWRITE_MS && !seen.queued {
                    seen.queued = true;
                    st.stale_networks.insert((key.id.clone(), network));
                }
                return;
            }
        }
        let index = (key.id.clone(), network);
        if let Some(i) = st.sighting_index.get(&index) {
            let s = &mut st.sightings[*i];
            s.count += 1;
            s.last_at = s.last_at.max(at);
            return;
        }
        if st.sightings.len() >= MAX_SIGHTINGS {
            return;
        }
        st.sighting_index.insert(index.clone(), st.sightings.len());
        st.sightings.push(Sighting {
            org_id: org.to_owned(),
            key_id: index.0,
            prefix: key.display_prefix(),
            network: index.1,
            ip: normalize_ip(ip).to_string(),
            count: 1,
            first_at: at,
            last_at: at,
        });
    }

    /// Writes what the detectors found: new events, the growing counts of open ones, and the
    /// networks keys were used from. Called every second, and at shutdown.
    pub async fn flush(&self, ctx: &Ctx) -> Result<(), StoreError> {
        self.flush_networks(ctx).await?;
        self.flush_incidents(ctx).await?;
        self.forget(ctx.now());
        Ok(())
    }

    async fn flush_networks(&self, ctx: &Ctx) -> Result<(), StoreError> {
        let (sightings, missing) = {
            let mut st = self.lock();
            if st.networks.len() > MAX_KEYS && st.stale_networks.is_empty() {
                st.networks.clear();
            }
            st.sighting_index.clear();
            let sightings = std::mem::take(&mut st.sightings);
            let missing: HashSet<String> = sightings
                .iter()
                .filter(|s| !st.networks.contains_key(&s.key_id))
                .map(|s| s.key_id.clone())
                .collect();
            (sightings, missing)
        };
        // The keys whose networks are not in memory are read first, outside the lock.
        let mut loaded: HashMap<String, HashMap<IpAddr, NetSeen>> = HashMap::new();
        for key_id in missing {
            let stored = match ctx.store.key_networks(&key_id).await {
                Ok(stored) => stored,
                Err(e) => {
                    // Kept for the next flush, after what arrived meanwhile.
                    let mut st = self.lock();
                    let State {
                        sightings: list,
                        sighting_index: index,
                        ..
                    } = &mut *st;
                    let newer = std::mem::replace(list, sightings);
                    index.clear();
                    for (i, s) in list.iter().enumerate() {
                        index.insert((s.key_id.clone(), s.network), i);
                    }
                    for s in newer {
                        let at = (s.key_id.clone(), s.network);
                        if index.contains_key(&at) || list.len() >= MAX_SIGHTINGS {
                            continue;
                        }
                        index.insert(at, list.len());
                        list.push(s);
                    }
                    return Err(e);
                }
            };
            let nets = stored
                .into_iter()
                .filter_map(|(n, at)| {
                    Some((
                        parse_network(&n)?,
                        NetSeen {
                            seen: at,
                            written: at,
                            queued: false,
                        },
                    ))
                })
                .collect();
            loaded.insert(key_id, nets);
        }
        let window = ms(self.settings.new_ip_window);
        let writes: Vec<(String, IpAddr, Millis)> = {
            let mut st = self.lock();
            for (key_id, nets) in loaded {
                st.networks.entry(key_id).or_insert(nets);
            }
            for s in sightings {
                let nets = st.networks.entry(s.key_id.clone()).or_default();
                let used_before = !nets.is_empty();
                let known = nets
                    .get(&s.network)
                    .is_some_and(|n| s.first_at - n.seen < window);
                let entry = nets.entry(s.network).or_insert(NetSeen {
                    seen: s.last_at,
                    written: 0,
                    queued: false,
                });
                entry.seen = entry.seen.max(s.last_at);
                if entry.seen - entry.written >= NETWORK_REWRITE_MS || entry.written == 0 {
                    entry.queued = true;
                    st.stale_networks.insert((s.key_id.clone(), s.network));
                }
                if known || !used_before {
                    continue;
                }
                let subject = Subject::KeyNetwork {
                    key_id: s.key_id.clone(),
                    network: s.network,
                };
                if self.extend(&mut st, EventType::NewIp, &subject, s.last_at, s.count) {
                    continue;
                }
                let incident = Incident {
                    id: super::new_event_id(),
                    kind: EventType::NewIp,
                    org_id: s.org_id,
                    key_id: Some(s.key_id),
                    prefix: Some(s.prefix),
                    ip: Some(s.ip),
                    network: Some(s.network),
                    average: 0.0,
                    grace_end: None,
                    count: s.count,
                    first_at: s.first_at,
                    last_at: s.last_at,
                    inserted: false,
                    written: 0,
                    suppressed: false,
                };
                Self::open(&mut st, subject, incident);
            }
            let stale: Vec<(String, IpAddr)> = st
                .stale_networks
                .iter()
                .take(NETWORK_BATCH)
                .cloned()
                .collect();
            stale
                .into_iter()
                .filter_map(|(key_id, network)| {
                    let seen = st.networks.get(&key_id)?.get(&network)?.seen;
                    Some((key_id, network, seen))
                })
                .collect()
        };
        let rows: Vec<(String, String, Millis)> = writes
            .iter()
            .map(|(key_id, network, at)| (key_id.clone(), network_text(*network), *at))
            .collect();
        ctx.store.touch_key_networks(&rows).await?;
        let mut st = self.lock();
        for (key_id, network, at) in writes {
            st.stale_networks.remove(&(key_id.clone(), network));
            if let Some(n) = st
                .networks
                .get_mut(&key_id)
                .and_then(|n| n.get_mut(&network))
            {
                n.written = n.written.max(at);
                n.queued = false;
            }
        }
        Ok(())
    }

    /// The detail of an incident, with the settings it quotes.
    fn detail(&self, i: &Incident) -> String {
        i.detail(self.settings.new_ip_window.as_secs().div_ceil(86_400))
    }

    async fn flush_incidents(&self, ctx: &Ctx) -> Result<(), StoreError> {
        let pending: Vec<Incident> = {
            let st = self.lock();
            st.closed
                .iter()
                .chain(st.incidents.values())
                .filter(|i| i.dirty())
                .cloned()
                .collect()
        };
        for i in pending {
            let detail = self.detail(&i);
            let mut suppressed = false;
            if i.inserted {
                ctx.store
                    .update_security_event(&i.id, i.count, &detail, i.last_at)
                    .await?;
            } else if i.kind == EventType::GracePeriodUse
                && ctx
                    .store
                    .has_recent_security_event(
                        &i.org_id,
                        i.kind,
                        i.key_id.as_deref().unwrap_or_default(),
                        i.first_at - ms(self.settings.grace_use_interval),
                    )
                    .await?
            {
                suppressed = true;
            } else {
                super::record(
                    ctx,
                    NewEvent {
                        id: i.id.clone(),
                        org_id: i.org_id.clone(),
                        kind: i.kind,
                        key_id: i.key_id.clone(),
                        prefix: i.prefix.clone(),
                        ip: i.ip.clone(),
                        count: i.count,
                        detail,
                        at: i.first_at,
                        last_seen_at: i.last_at,
                    },
                )
                .await?;
            }
            let mut st = self.lock();
            let State {
                incidents, closed, ..
            } = &mut *st;
            if let Some(held) = closed
                .iter_mut()
                .chain(incidents.values_mut())
                .find(|h| h.id == i.id)
            {
                held.inserted = true;
                held.written = i.count;
                held.suppressed |= suppressed;
            }
            closed.retain(|c| c.dirty());
        }
        Ok(())
    }

    /// Drops what can no longer matter: closed incidents whose events are written, refusals older
    /// than the window, minute counts older than an hour.
    fn forget(&self, now: Millis) {
        let window = ms(self.settings.auth_failures_window);
        let mut st = self.lock();
        let open: Vec<(EventType, Subject)> = st
            .incidents
            .iter()
            .filter(|(_, i)| i.dirty() || self.is_open(i, now))
            .map(|(k, _)| k.clone())
            .collect();
        let open: HashSet<(EventType, Subject)> = open.into_iter().collect();
        st.incidents.retain(|k, _| open.contains(k));
        st.refusals
            .retain(|_, times| times.back().is_some_and(|(t, _)| *t > now - window));
        let minute = now.div_euclid(60_000);
        st.minutes.retain(|_, m| m.minute >= minute - 60);
    }
}

impl Observer for Detector {
    fn observe(&self, o: &Observation<'_>) {
        let Some(org) = o.org_id else {
            return;
        };
        let refused = REFUSED_KEY_CODES.contains(&o.code);
        let mut st = self.lock();
        if refused {
            if let Some(ip) = o.client_ip {
                let subject = Subject::Client {
                    org: org.to_owned(),
                    client: client_of(ip),
                };
                self.refused(&mut st, org, subject, o.at, Some(ip), None);
            }
            if let Some(key) = o.key {
                let subject = Subject::Key {
                    key_id: key.id.clone(),
                };
                self.refused(&mut st, org, subject, o.at, o.client_ip, Some(key));
            }
        }
        let Some(key) = o.key else {
            return;
        };
        self.count_request(&mut st, org, key, o.at);
        if refused {
            return;
        }
        // The key proved its secret: it was used.
        self.grace_use(&mut st, org, key, o.at, o.client_ip);
        if let Some(ip) = o.client_ip {
            self.network_use(&mut st, org, key, o.at, ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Source;

    fn detector() -> Detector {
        Detector::new(EventSettings::default(), 0)
    }

    fn refuse(d: &Detector, ip: &str, at: Millis) {
        d.observe(&Observation {
            source: Source::Verify,
            org_id: Some("org_1"),
            key: None,
            code: "NOT_FOUND",
            client_ip: Some(ip.parse().unwrap()),
            at,
        });
    }

    /// (count, first refusal, ip) of each auth_failures incident, oldest first.
    fn incidents(d: &Detector) -> Vec<(i64, Millis, Option<String>)> {
        let st = d.lock();
        let mut found: Vec<_> = st
            .closed
            .iter()
            .chain(st.incidents.values())
            .filter(|i| i.kind == EventType::AuthFailures)
            .map(|i| (i.count, i.first_at, i.ip.clone()))
            .collect();
        found.sort_by_key(|(_, first, _)| *first);
        found
    }

    #[test]
    fn twenty_refusals_within_a_sliding_minute_open_one_incident_that_grows() {
        let d = detector();
        for i in 0..19 {
            refuse(&d, "198.51.100.7", i);
        }
        assert!(incidents(&d).is_empty());
        // A minute later the first nineteen no longer count.
        refuse(&d, "198.51.100.7", 60_000);
        assert!(incidents(&d).is_empty());
        for i in 1..20 {
            refuse(&d, "198.51.100.7", 60_000 + i);
        }
        assert_eq!(incidents(&d), [(20, 60_000, Some("198.51.100.7".into()))]);
        // The burst goes on: the same incident counts it.
        for i in 0..5 {
            refuse(&d, "198.51.100.7", 90_000 + i * 1_000);
        }
        assert_eq!(incidents(&d)[0].0, 25);
    }

    #[test]
    fn a_quiet_minute_ends_a_burst_and_the_next_needs_the_threshold_again() {
        let d = detector();
        for i in 0..20 {
            refuse(&d, "198.51.100.7", i);
        }
        refuse(&d, "198.51.100.7", 60_020);
        assert_eq!(incidents(&d).len(), 1, "after a quiet minute, not counted");
        for i in 0..19 {
            refuse(&d, "198.51.100.7", 60_100 + i);
        }
        let found = incidents(&d);
        assert_eq!(found.len(), 2);
        assert_eq!((found[1].0, found[1].1), (20, 60_020));
    }

    #[test]
    fn an_endless_burst_is_one_event_an_hour() {
        let d = detector();
        let mut at = 0;
        while at < MAX_BURST_MS + 30_000 {
            refuse(&d, "198.51.100.7", at);
            at += 1_000;
        }
        let found = incidents(&d);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].1, 0);
        assert!(found[1].1 >= MAX_BURST_MS);
    }

    #[test]
    fn addresses_count_apart_but_an_ipv6_64_is_one_client() {
        let d = detector();
        for i in 0..10 {
            refuse(&d, "198.51.100.7", i);
            refuse(&d, "198.51.100.8", i);
        }
        assert!(incidents(&d).is_empty());
        for i in 0..20 {
            refuse(&d, &format!("2001:db8::{:x}", i + 1), 100 + i);
        }
        assert_eq!(incidents(&d).len(), 1);
    }

    #[test]
    fn verdicts_that_are_not_refused_keys_count_nothing() {
        let d = detector();
        for i in 0..40 {
            d.observe(&Observation {
                source: Source::Gateway,
                org_id: Some("org_1"),
                key: None,
                code: if i % 2 == 0 {
                    "RATE_LIMITED"
                } else {
                    "IP_NOT_ALLOWED"
                },
                client_ip: Some("198.51.100.7".parse().unwrap()),
                at: i,
            });
        }
        assert!(incidents(&d).is_empty());
        // Nor does a verification whose organization is unknown.
        for i in 0..40 {
            d.observe(&Observation {
                source: Source::Gateway,
                org_id: None,
                key: None,
                code: "NOT_FOUND",
                client_ip: Some("198.51.100.7".parse().unwrap()),
                at: i,
            });
        }
        assert!(incidents(&d).is_empty());
    }
}
