-- Which org template each imported tree came from: a re-import of the same org finds
-- its live roots (and refuses, replaces or duplicates, as asked).
CREATE TABLE org_imports (
    root_id    TEXT PRIMARY KEY NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    org        TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX org_imports_by_org ON org_imports (org);
