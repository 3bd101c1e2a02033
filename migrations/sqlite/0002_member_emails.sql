-- A deleted member's email may be invited again; active and disabled members keep theirs unique.
DROP INDEX users_email;
CREATE UNIQUE INDEX users_email_live ON users(email) WHERE status <> 'deleted';
