-- Verifications counted per key per minute by verdict code, and the same counts by hour and by
-- day: each flush of the counters kept in memory adds to all three in one transaction, so that
-- every granularity agrees at every moment. `key_id` is '' for verifications that no key could
-- be attributed to (malformed, unknown), which count in their organization's totals only.
-- `bucket` is the start of the minute, hour or day (UTC), in Unix milliseconds.
CREATE TABLE usage_minutes (
    org_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id, code)
);
CREATE INDEX usage_minutes_key ON usage_minutes(key_id, bucket);

CREATE TABLE usage_hours (
    org_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id, code)
);
CREATE INDEX usage_hours_key ON usage_hours(key_id, bucket);

CREATE TABLE usage_days (
    org_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    code TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (org_id, bucket, key_id, code)
);
CREATE INDEX usage_days_key ON usage_days(key_id, bucket);

-- One row per batch of counts written, in the batch's own transaction: a batch whose commit may
-- or may not have happened (the connection broke while committing) is retried only when its id
-- is not here, so that no count is added twice.
CREATE TABLE usage_batches (
    id TEXT PRIMARY KEY,
    written_at BIGINT NOT NULL
);
CREATE INDEX usage_batches_written ON usage_batches(written_at);
