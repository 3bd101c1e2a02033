-- The hosts a gateway API answers for (JSON list of names; empty: any host).
ALTER TABLE apis ADD COLUMN hosts TEXT NOT NULL DEFAULT '[]';
