-- Scoped FULL_SYNC runs (a repair): the buckets a run is limited to (NULL: the whole
-- table), and full_sync_batch gains p_buckets (the seven-argument function goes, so a
-- call is not ambiguous).
ALTER TABLE optiqoflow.sync_runs ADD COLUMN IF NOT EXISTS buckets text[];
COMMENT ON COLUMN optiqoflow.sync_runs.buckets IS
    'The buckets (2 or 4 hex digits of md5(id::text)) a scoped run is limited to: its removals touch only their rows. NULL: the whole table.';
DROP FUNCTION IF EXISTS optiqoflow.full_sync_batch(uuid, text, jsonb, bigint, bigint, text, timestamptz);
