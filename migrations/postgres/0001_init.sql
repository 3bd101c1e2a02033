CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    plan TEXT NOT NULL,
    api_access BIGINT NOT NULL,
    billing_status TEXT NOT NULL,
    policies TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email ON users(email);
CREATE INDEX users_org ON users(org_id, created_at);

CREATE TABLE apis (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    slug TEXT NOT NULL,
    prefix_live TEXT NOT NULL,
    prefix_test TEXT NOT NULL,
    scopes TEXT NOT NULL,
    token_types TEXT NOT NULL,
    accept_x_api_key BIGINT NOT NULL,
    default_rate_limit TEXT,
    upstream TEXT,
    routes TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX apis_org_slug ON apis(org_id, slug);

CREATE TABLE keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    api_id TEXT NOT NULL REFERENCES apis(id),
    name TEXT NOT NULL,
    description TEXT,
    key_prefix TEXT NOT NULL,
    token_type TEXT NOT NULL,
    environment TEXT NOT NULL,
    scopes TEXT NOT NULL,
    ip_allowlist TEXT NOT NULL,
    expires_at BIGINT,
    enabled BIGINT NOT NULL,
    hash TEXT NOT NULL,
    pepper_version BIGINT NOT NULL,
    owner_id TEXT NOT NULL REFERENCES users(id),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    last_used_at BIGINT,
    last_used_ip TEXT,
    rate_limit_requests BIGINT,
    rate_limit_per_seconds BIGINT,
    quota_remaining BIGINT,
    quota_refill TEXT,
    quota_refilled_at BIGINT,
    metadata TEXT NOT NULL,
    replaces TEXT,
    replaced_by TEXT,
    revoked_at BIGINT,
    revoke_reason TEXT,
    deleted_at BIGINT,
    exposed_at BIGINT,
    recoverable BIGINT NOT NULL,
    encrypted_secret TEXT
);
CREATE UNIQUE INDEX keys_hash ON keys(hash);
CREATE INDEX keys_org_created ON keys(org_id, created_at, id);
CREATE INDEX keys_owner ON keys(owner_id);

CREATE TABLE audit_events (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_id TEXT,
    actor_label TEXT NOT NULL,
    action TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id TEXT,
    target_label TEXT,
    ip TEXT,
    user_agent TEXT,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_org_seq ON audit_events(org_id, seq);
CREATE INDEX audit_org_target ON audit_events(org_id, target_id, seq);
