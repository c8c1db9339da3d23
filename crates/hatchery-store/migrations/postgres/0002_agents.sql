-- Agents talk back: workspace tokens (hashes only), liveness and provisioning bookkeeping on
-- the workspace row, and the activity log.

CREATE TABLE workspace_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- 'workspace': the agent's bearer; 'bootstrap': single-purpose, for the first register.
    kind         TEXT NOT NULL CHECK (kind IN ('workspace', 'bootstrap')),
    -- SHA-256 of the token, hex; the plaintext is shown once and never stored.
    hash         TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX workspace_tokens_by_workspace ON workspace_tokens (workspace_id, kind);

-- When the last register or heartbeat was seen (liveness), when the workspace last entered
-- 'provisioning' (the provision deadline), why it failed, and what the agent declared.
ALTER TABLE workspaces ADD COLUMN last_seen_at BIGINT;
ALTER TABLE workspaces ADD COLUMN provisioning_since BIGINT;
ALTER TABLE workspaces ADD COLUMN failure_reason TEXT;
ALTER TABLE workspaces ADD COLUMN runtime_state TEXT NOT NULL DEFAULT '';
ALTER TABLE workspaces ADD COLUMN status_mgmt BIGINT NOT NULL DEFAULT 0 CHECK (status_mgmt IN (0, 1));
UPDATE workspaces SET provisioning_since = updated_at WHERE status = 'provisioning';
CREATE INDEX workspaces_by_status ON workspaces (status, last_seen_at);

CREATE TABLE activity (
    id            TEXT PRIMARY KEY NOT NULL,
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    activity_type TEXT NOT NULL,
    source_id     TEXT,
    target_id     TEXT,
    method        TEXT,
    summary       TEXT,
    duration_ms   BIGINT,
    status        TEXT NOT NULL,
    error_detail  TEXT,
    request_body  TEXT,
    response_body TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX activity_by_workspace ON activity (workspace_id, created_at);

-- Events get their cursor in commit order: an insert first takes a transaction-scoped lock
-- (held until commit), then draws its seq. Without it, a transaction that drew seq 10
-- could commit after one with seq 11, and a reader resuming "after 11" would miss 10.
CREATE FUNCTION events_in_commit_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(4242001);
    NEW.seq := nextval(pg_get_serial_sequence('events', 'seq'));
    RETURN NEW;
END
$$;
CREATE TRIGGER events_in_commit_order BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_in_commit_order();
