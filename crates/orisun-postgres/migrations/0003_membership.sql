-- Replica-set membership (orisun_store::Membership): named sets of projection workers with a
-- fixed partition count and a generation, and their members' heartbeats.
--
-- A member row lives until its heartbeat expires (judged by the database's clock only); the
-- next heartbeat of any member deletes expired rows and bumps the set's generation. The set's
-- row is locked by every heartbeat, so generation changes are serialised.
CREATE TABLE IF NOT EXISTS orisun.replica_sets (
    name       text        NOT NULL,
    partitions integer     NOT NULL CHECK (partitions > 0),
    generation bigint      NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT replica_sets_pkey PRIMARY KEY (name)
);

CREATE TABLE IF NOT EXISTS orisun.replica_members (
    set_name   text        NOT NULL REFERENCES orisun.replica_sets (name) ON DELETE CASCADE,
    worker     text        NOT NULL,
    held       integer[]   NOT NULL DEFAULT '{}',
    joined_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT replica_members_pkey PRIMARY KEY (set_name, worker)
);
