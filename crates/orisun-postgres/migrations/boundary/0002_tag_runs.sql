-- Tag rows become runs: a row (h, lo, hi) says that every event from seq lo to seq hi (both
-- inclusive) has the tag h; hi is NULL for a run of one event, which is what every row written by
-- version 1 is. A group or batch writes one row per run of consecutive events sharing a tag
-- (a type, a stream id, a tenant...) instead of one row per event, so large batches insert far
-- fewer index rows. The rows of one tag never overlap (each run lies inside one insert, and
-- inserts cover disjoint seq ranges), so the run holding or preceding a seq is the one with the
-- greatest lo at or before it: one probe of the primary key (h, lo).
-- The key INCLUDEs hi, so that reading runs stays an index-only scan. The table itself is not
-- rewritten; its key index is rebuilt once (quick for a new boundary, minutes for a very large
-- one).
ALTER TABLE {schema}.{tags} RENAME COLUMN seq TO lo;
ALTER TABLE {schema}.{tags} ADD COLUMN hi bigint;
ALTER TABLE {schema}.{tags} DROP CONSTRAINT {tags_pkey};
ALTER TABLE {schema}.{tags} ADD CONSTRAINT {tags_pkey} PRIMARY KEY (h, lo) INCLUDE (hi);
