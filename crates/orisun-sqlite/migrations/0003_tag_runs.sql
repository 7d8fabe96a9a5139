-- Rows of `tags` become runs: the tag is carried by every event from `seq` to `last` (both
-- inclusive; `NULL` means `seq` alone, which is what every row written before this migration
-- is). A batch or a group of saves whose consecutive events share a tag (their type, a stream
-- or context field) then costs one row for it instead of one per event, and a lookup reads one
-- row where it read hundreds. Runs of one tag never overlap, so `(h, seq)` stays the key.
ALTER TABLE tags ADD COLUMN last INTEGER;
