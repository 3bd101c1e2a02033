-- Changed keys are read in order of version and id (see `Store::keys_changed_since`).
DROP INDEX keys_updated;
CREATE INDEX keys_updated_id ON keys(updated_at, id);
