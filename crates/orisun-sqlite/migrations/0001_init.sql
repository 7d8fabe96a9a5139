-- The log of one boundary, its indexes, and the name of the boundary the file belongs to.

-- One row per event. `seq` is the event's sequence number (the position's prepare part, 0-based
-- and gap-free) and the table's rowid, so the log is stored in position order.
CREATE TABLE events (
    seq          INTEGER PRIMARY KEY,
    commit_pos   INTEGER NOT NULL,
    event_id     BLOB    NOT NULL UNIQUE,
    event_type   TEXT    NOT NULL,
    data         TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    date_created INTEGER NOT NULL -- unix microseconds, UTC
);

-- Resolves an arbitrary position (one no event has, too) to a seq with one index seek.
CREATE INDEX events_by_position ON events (commit_pos, seq);

-- The tag index: one row per distinct `key = value` tag hash of each event. Criteria intersect
-- and union these seq lists instead of scanning the log.
CREATE TABLE tags (
    h   BLOB    NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (h, seq)
) WITHOUT ROWID;

-- The boundary's name as it was created, to detect two names that one case-insensitive file
-- system maps to the same file.
CREATE TABLE boundary (
    id   INTEGER PRIMARY KEY CHECK (id = 0),
    name TEXT    NOT NULL
);
