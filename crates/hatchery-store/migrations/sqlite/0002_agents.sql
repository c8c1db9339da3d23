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
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX workspace_tokens_by_workspace ON workspace_tokens (workspace_id, kind);

-- When the last register or heartbeat was seen (liveness), when the workspace last entered
-- 'provisioning' (the provision deadline), why it failed, and what the agent declared.
ALTER TABLE workspaces ADD COLUMN last_seen_at INTEGER;
ALTER TABLE workspaces ADD COLUMN provisioning_since INTEGER;
ALTER TABLE workspaces ADD COLUMN failure_reason TEXT;
ALTER TABLE workspaces ADD COLUMN runtime_state TEXT NOT NULL DEFAULT '';
ALTER TABLE workspaces ADD COLUMN status_mgmt INTEGER NOT NULL DEFAULT 0 CHECK (status_mgmt IN (0, 1));
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
    duration_ms   INTEGER,
    status        TEXT NOT NULL,
    error_detail  TEXT,
    request_body  TEXT,
    response_body TEXT,
    created_at    INTEGER NOT NULL
);
CREATE INDEX activity_by_workspace ON activity (workspace_id, created_at);
