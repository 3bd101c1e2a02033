-- Named IP ACLs and key groups, shared by many keys of one organization; a key names them by id
-- (JSON lists), and its resolved allowlist, scopes and rate limit are read with the key.
CREATE TABLE ip_acls (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    entries TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX ip_acls_org_name ON ip_acls(org_id, name);

CREATE TABLE key_groups (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    api_id TEXT NOT NULL REFERENCES apis(id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    rate_limit TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX key_groups_org_name ON key_groups(org_id, name);

ALTER TABLE keys ADD COLUMN ip_acl_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE keys ADD COLUMN group_ids TEXT NOT NULL DEFAULT '[]';
ALTER TABLE keys ADD COLUMN resources TEXT NOT NULL DEFAULT '[]';

-- Service accounts own keys for integrations: no email, no password, never signed in. Emails stay
-- unique among the people of the service.
ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person';
DROP INDEX users_email_live;
CREATE UNIQUE INDEX users_email_live ON users(email) WHERE status <> 'deleted' AND kind = 'person';
