-- Delegations: a task one workspace hands to a peer. The control plane carries those made
-- with POST /workspaces/:id/delegate (claimed with a lease, as provision jobs are, so a
-- delivery cut short by a restart is made again); an agent that delegates by itself
-- records its own (self_managed) and reports how it ended.
CREATE TABLE delegations (
    -- The row's own key; clients name a delegation by (workspace_id, delegation_id).
    row_id          TEXT PRIMARY KEY NOT NULL,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- A UUID the control plane chose, or the agent's own task id (recorded ones).
    delegation_id   TEXT NOT NULL,
    -- No reference: a purged target leaves its delegators' history as it was.
    target_id       TEXT NOT NULL,
    task            TEXT NOT NULL,
    self_managed    BIGINT NOT NULL CHECK (self_managed IN (0, 1)),
    status          TEXT NOT NULL CHECK (status IN ('pending', 'working', 'completed', 'failed')),
    -- The caller's key for a retried POST /delegate; NULLs never collide. A failed
    -- delegation gives its key up, so a retry delegates again.
    idempotency_key TEXT,
    -- The target's answer (completed), and why it failed (failed) or is waiting (pending).
    result          TEXT,
    error           TEXT,
    -- Delivery: how many times it was claimed, not before when it is tried again, and
    -- which runner holds it until when.
    attempts        BIGINT NOT NULL DEFAULT 0,
    not_before      BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (workspace_id, delegation_id),
    UNIQUE (workspace_id, idempotency_key)
);
CREATE INDEX delegations_by_workspace ON delegations (workspace_id, created_at);
CREATE INDEX delegations_by_status ON delegations (status, created_at);
