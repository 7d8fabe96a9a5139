-- A middle level of the tag index, between `tag_log` (the newest rows, in log order) and `tags`
-- (the oldest, keyed by tag), with the shape of `tags`: runs keyed by (tag, first seq).
--
-- Why: a row keyed by tag hash lands on a random leaf, so inserting a batch's rows straight into
-- a large `tags` dirtied about one leaf per row (three 4 KiB WAL frames per bench event), and the
-- moves of `tag_log` did the same. Here they land on the leaves of a table that stays small (the
-- rows of a few hundred thousand events), and the writer moves them on into `tags` one slice of
-- the hash space at a time, inside the transactions of later groups: a slice of this table and
-- the same slice of `tags` are both sorted by tag, so the move writes each leaf of `tags` once
-- for all the rows it receives (see `tag_merge.rs`).
--
-- Invariant, per tag: every seq of `tag_log` is above every seq of `tags_recent`, which is above
-- every seq of `tags` (rows only move towards `tags`, a whole tag's rows of a table at once, and
-- new events get seqs above the head), so a walk reads the three tables in seq order.
CREATE TABLE tags_recent (
    h    BLOB    NOT NULL,
    seq  INTEGER NOT NULL,
    last INTEGER,
    PRIMARY KEY (h, seq)
) WITHOUT ROWID;
