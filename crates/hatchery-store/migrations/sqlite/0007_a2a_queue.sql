-- Queued A2A messages: a message/send whose caller asked to queue it (X-Hatchery-Queue)
-- when its target could not take it. Delivered per target in the order stored, one at a
-- time, by the courier that delivers delegations (claimed with a lease, so a delivery
-- cut short by a restart is made again).
CREATE TABLE a2a_queue (
    -- The order of delivery.
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    -- The id the caller is told (queue_id).
    id              TEXT NOT NULL UNIQUE,
    -- The target.
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    -- The caller: a workspace id, or 'operator'.
    caller          TEXT NOT NULL,
    method          TEXT NOT NULL,
    -- The normalized JSON-RPC request, as the agent gets it.
    body            TEXT NOT NULL,
    -- params.message.messageId: a second enqueue of it while one is live is the same.
    message_id      TEXT,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'dispatched', 'delivered', 'failed')),
    -- Why it failed, or (queued) why it waits.
    error           TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    not_before      INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX a2a_queue_live_message ON a2a_queue (workspace_id, caller, message_id)
    WHERE message_id IS NOT NULL AND status IN ('queued', 'dispatched');
CREATE INDEX a2a_queue_by_workspace ON a2a_queue (workspace_id, status, seq);
CREATE INDEX a2a_queue_by_status ON a2a_queue (status, seq);
