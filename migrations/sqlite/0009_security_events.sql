-- Security events raised by the detectors (refused keys, new networks, usage spikes, old keys
-- used during their grace period, keys seen in URLs), newest first by `seq`.
CREATE TABLE security_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    type TEXT NOT NULL,
    severity TEXT NOT NULL,
    key_id TEXT,
    prefix TEXT,
    ip TEXT,
    count BIGINT NOT NULL,
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX security_events_org_seq ON security_events(org_id, seq);
CREATE INDEX security_events_org_type ON security_events(org_id, type, seq);
CREATE INDEX security_events_org_key ON security_events(org_id, key_id, seq);

-- The networks (/24 for IPv4, /64 for IPv6) each key was used from, with when it was last seen
-- there; written in batches, at most about once a day per key and network.
CREATE TABLE key_networks (
    key_id TEXT NOT NULL,
    network TEXT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, network)
);
