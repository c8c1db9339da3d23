-- Workspaces, their generated config files, events, provision jobs, sealed secrets and
-- server settings. Ids are lower-case UUID text; times are Unix microseconds; flags are 0/1
-- integers so SQLite and Postgres read back the same types.

CREATE TABLE workspaces (
    id                   TEXT PRIMARY KEY NOT NULL,
    name                 TEXT NOT NULL,
    role                 TEXT,
    tier                 INTEGER NOT NULL,
    status               TEXT NOT NULL,
    url                  TEXT NOT NULL DEFAULT '',
    parent_id            TEXT REFERENCES workspaces (id),
    agent_card           TEXT,
    active_tasks         INTEGER NOT NULL DEFAULT 0,
    max_concurrent_tasks INTEGER NOT NULL DEFAULT 1,
    last_error_rate      REAL NOT NULL DEFAULT 0,
    last_sample_error    TEXT NOT NULL DEFAULT '',
    uptime_seconds       INTEGER NOT NULL DEFAULT 0,
    current_task         TEXT NOT NULL DEFAULT '',
    runtime              TEXT NOT NULL,
    model                TEXT NOT NULL DEFAULT '',
    workspace_dir        TEXT,
    workspace_access     TEXT NOT NULL DEFAULT 'none',
    x                    REAL NOT NULL DEFAULT 0,
    y                    REAL NOT NULL DEFAULT 0,
    collapsed            INTEGER NOT NULL DEFAULT 0 CHECK (collapsed IN (0, 1)),
    external             INTEGER NOT NULL DEFAULT 0 CHECK (external IN (0, 1)),
    budget_limit         INTEGER,
    monthly_spend        INTEGER NOT NULL DEFAULT 0,
    provider             TEXT,
    provider_source      TEXT NOT NULL,
    llm_billing_mode     TEXT CHECK (llm_billing_mode IN ('platform', 'byok')),
    registry_hash        TEXT NOT NULL,
    derivation           TEXT NOT NULL,
    last_outbound_at     INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    version              INTEGER NOT NULL DEFAULT 1,
    CHECK (status IN ('provisioning', 'online', 'degraded', 'offline', 'failed', 'paused',
                      'hibernating', 'hibernated', 'awaiting_agent', 'removed'))
);
CREATE INDEX workspaces_by_parent ON workspaces (parent_id);
CREATE INDEX workspaces_by_created ON workspaces (created_at, id);

CREATE TABLE workspace_files (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    path         TEXT NOT NULL,
    content      TEXT NOT NULL,
    PRIMARY KEY (workspace_id, path)
);

CREATE TABLE events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT NOT NULL UNIQUE,
    event_type   TEXT NOT NULL,
    workspace_id TEXT,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX events_by_workspace ON events (workspace_id, seq);

CREATE TABLE provision_jobs (
    id           TEXT PRIMARY KEY NOT NULL,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX provision_jobs_by_state ON provision_jobs (state, created_at);

CREATE TABLE secrets (
    scope      TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (scope, name)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
