-- The tables of one boundary. Placeholders in braces are replaced by quoted identifiers
-- (validated names only); no value is ever substituted into this text.

-- The log. seq is the prepare position (0-based, gap-free: assigned under the head row lock,
-- never from a sequence object, so a rolled-back transaction consumes nothing); commit_pos is
-- the batch's last seq + 1. No index INCLUDEs data, so an event of any size can be stored.
CREATE TABLE IF NOT EXISTS {schema}.{events} (
    seq          bigint      NOT NULL,
    commit_pos   bigint      NOT NULL,
    event_id     uuid        NOT NULL,
    event_type   text        NOT NULL,
    data         jsonb       NOT NULL,
    metadata     jsonb       NOT NULL,
    date_created timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT {events_pkey} PRIMARY KEY (seq),
    CONSTRAINT {events_id_key} UNIQUE (event_id)
);

-- Resolves an arbitrary position (commit, prepare) to a seq, and serves position-ordered scans.
CREATE INDEX IF NOT EXISTS {events_pos_idx} ON {schema}.{events} (commit_pos, seq);

-- The tag index: one row per distinct (key = value) tag hash of an event's data, so that the
-- latest event matching a criterion is an index probe, whatever the size of the log. (Version 2
-- turns these rows into runs of consecutive events: see 0002_tag_runs.sql.)
CREATE TABLE IF NOT EXISTS {schema}.{tags} (
    h   uuid   NOT NULL,
    seq bigint NOT NULL,
    CONSTRAINT {tags_pkey} PRIMARY KEY (h, seq)
);

-- The head of the log, one row. Writers lock it (SELECT ... FOR UPDATE) before they read it
-- and keep the lock through COMMIT: positions are assigned in commit order.
CREATE TABLE IF NOT EXISTS {schema}.{head} (
    id         integer NOT NULL,
    seq        bigint  NOT NULL,
    commit_pos bigint  NOT NULL,
    CONSTRAINT {head_pkey} PRIMARY KEY (id),
    CONSTRAINT {head_one_row} CHECK (id = 0)
);
INSERT INTO {schema}.{head} (id, seq, commit_pos) VALUES (0, -1, -1) ON CONFLICT (id) DO NOTHING;
