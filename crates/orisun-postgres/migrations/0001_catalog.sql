-- The catalog of boundaries: which schema holds a boundary's tables, which prefix names them,
-- and which version of the per-boundary DDL (migrations/boundary/) they are at.
CREATE TABLE IF NOT EXISTS orisun.boundaries (
    name        text        NOT NULL,
    schema      text        NOT NULL,
    prefix      text        NOT NULL,
    ddl_version integer     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT boundaries_pkey PRIMARY KEY (name),
    CONSTRAINT boundaries_schema_prefix_key UNIQUE (schema, prefix)
);
