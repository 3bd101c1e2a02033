-- Webhook endpoints of an organization. The signing secret is sealed (AES-256-GCM) under a key
-- derived from the pepper of `secret_pepper_version`, bound to the endpoint's id: the database
-- alone cannot sign.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    url TEXT NOT NULL,
    events TEXT NOT NULL,
    description TEXT,
    enabled BIGINT NOT NULL,
    secret_sealed TEXT NOT NULL,
    secret_pepper_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX webhooks_org ON webhooks(org_id, created_at);

-- The durable queue: one message per event and endpoint, written in the unit of work of the
-- change that raised the event. A worker claims a due message by setting `lease_token` and
-- `locked_until`; only the holder of the lease records the outcome.
CREATE TABLE webhook_messages (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    org_id TEXT NOT NULL,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    schedule_base BIGINT NOT NULL,
    next_attempt_at BIGINT,
    locked_until BIGINT,
    lease_token TEXT,
    response_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_messages_due ON webhook_messages(status, next_attempt_at);
CREATE INDEX webhook_messages_hook ON webhook_messages(webhook_id, created_at);

-- Each attempt at delivering a message: when, the receiver's status or why it failed, and at
-- most a short excerpt of what the receiver answered.
CREATE TABLE webhook_attempts (
    message_id TEXT NOT NULL REFERENCES webhook_messages(id) ON DELETE CASCADE,
    attempt BIGINT NOT NULL,
    at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    response_status BIGINT,
    error TEXT,
    response_excerpt TEXT,
    PRIMARY KEY (message_id, attempt)
);

-- Which expiry notices (`30d`, `7d`, `1d`, `expired`) a key has raised, so each is raised once.
CREATE TABLE webhook_expiry_notices (
    key_id TEXT NOT NULL,
    notice TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, notice)
);

-- A key's quota notices: the amount 10% is taken of (its first quota; keys with a refill use the
-- refill amount) and whether the current crossing of each threshold has been raised.
CREATE TABLE webhook_quota_notices (
    key_id TEXT PRIMARY KEY,
    base BIGINT,
    low_sent BIGINT NOT NULL,
    exhausted_sent BIGINT NOT NULL
);
