-- The newest part of the tag index, kept in log order. An append writes its events' tag rows
-- here, at the right edge of a (seq, h) key, so a group of appends dirties a few pages instead of
-- one leaf of `tags` per distinct tag (every dirty page is a 4 KiB WAL frame written and synced
-- at commit). When the log holds enough rows, the writer moves all of them into `tags` in one
-- transaction, sorted by (h, seq): the rows of one tag then land on one leaf together.
--
-- Invariant: every tag row is in exactly one of the two tables, and every seq here is greater
-- than every seq in `tags` (the whole log moves at once, and new events get seqs above the head),
-- so a seek looks at one table first and at the other only when the first has nothing.
CREATE TABLE tag_log (
    seq INTEGER NOT NULL,
    h   BLOB    NOT NULL,
    PRIMARY KEY (seq, h)
) WITHOUT ROWID;
