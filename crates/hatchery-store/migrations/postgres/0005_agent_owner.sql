-- Which control-plane replica runs a workspace's agent. Each replica renews a lease of its
-- own (one row, whatever the number of its agents, naming its backend); when it dies, its
-- lease runs out and another replica starts its agents again. Only backends whose agents
-- die with their control plane (local sandboxes) record an owner; for the others, a
-- second live replica on the same database is refused at start.
ALTER TABLE workspaces ADD COLUMN agent_owner TEXT;
CREATE INDEX workspaces_by_agent_owner ON workspaces (agent_owner);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
