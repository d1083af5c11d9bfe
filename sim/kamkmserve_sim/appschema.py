"""kamkmserve's own tables, exactly as its schema declares them (docs/reference/kamkmserve.md §5.1-§5.2), for the
simulator's real-PostgreSQL mode and for tests. Only what the runbooks read is here."""

from __future__ import annotations

USER_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS kamkmserve_user (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    clerk_user_id text NOT NULL CONSTRAINT user_clerk_user_id_unique UNIQUE,
    email text NOT NULL CONSTRAINT user_email_unique UNIQUE,
    name text,
    role text NOT NULL DEFAULT 'USER',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL,
    referred_by_id text
)
"""

AUDIT_TABLE_DDL = """
CREATE TABLE IF NOT EXISTS kamkmserve_audit_log (
    id text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    event text NOT NULL,
    action text NOT NULL,
    resource text NOT NULL,
    allowed boolean NOT NULL DEFAULT false,
    actor_user_id text REFERENCES kamkmserve_user(id) ON DELETE SET NULL,
    ip text,
    user_agent text,
    metadata text,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""

AUDIT_INDEXES_DDL = (
    "CREATE INDEX IF NOT EXISTS audit_log_created_at_idx ON kamkmserve_audit_log (created_at)",
    "CREATE INDEX IF NOT EXISTS audit_log_actor_idx ON kamkmserve_audit_log (actor_user_id)",
    "CREATE INDEX IF NOT EXISTS audit_log_action_idx ON kamkmserve_audit_log (action)",
)

#: In the order the statements must run (the audit table's FK needs the user table).
AUDIT_SCHEMA = (USER_TABLE_DDL, AUDIT_TABLE_DDL, *AUDIT_INDEXES_DDL)
