-- Keys changed since an instant: each instance follows this to drop records another instance
-- changed from its cache.
CREATE INDEX keys_updated ON keys(updated_at);
