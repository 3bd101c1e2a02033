-- The dashboard sorts an organization's keys by name and by expiry. Last use gets no index: it is
-- written behind for every key in use, and an index would make each of those writes dearer to
-- speed up one sort of a list that the organization's key limit keeps short.
CREATE INDEX keys_org_name ON keys(org_id, LOWER(name));
CREATE INDEX keys_org_expires ON keys(org_id, expires_at);

-- A new key's secret between the form that made it and the page that shows it once (post, then
-- redirect, then get): sealed under a key derived from the session's token, which the database
-- never holds, taken by the first read and gone with its session.
CREATE TABLE pending_secrets (
    session_hash TEXT NOT NULL REFERENCES sessions(token_hash) ON DELETE CASCADE,
    key_id TEXT NOT NULL,
    sealed TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (session_hash, key_id)
);
CREATE INDEX pending_secrets_expires ON pending_secrets(expires_at);
