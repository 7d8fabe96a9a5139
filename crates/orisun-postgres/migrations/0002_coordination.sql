-- Cluster coordination (orisun_store::Coordination): leases with fencing epochs, and checkpoints.
--
-- A lease row is never deleted: releasing it only expires it, so its epoch keeps growing across
-- hand-overs and a write fenced by an old epoch can always be told apart. Expiry is judged by
-- the database's clock alone, so the nodes' clocks do not matter.
CREATE TABLE IF NOT EXISTS orisun.leases (
    name       text        NOT NULL,
    holder     text        NOT NULL,
    epoch      bigint      NOT NULL,
    expires_at timestamptz NOT NULL,
    CONSTRAINT leases_pkey PRIMARY KEY (name)
);

CREATE TABLE IF NOT EXISTS orisun.checkpoints (
    name        text        NOT NULL,
    commit_pos  bigint      NOT NULL,
    prepare_pos bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT checkpoints_pkey PRIMARY KEY (name)
);
