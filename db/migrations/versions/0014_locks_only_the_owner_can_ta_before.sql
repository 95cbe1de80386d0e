-- The locks of deliveries become rows of a table that only the owner may read or lock
-- (optiqoflow._lock, _tenant_locks, _lock_events): advisory locks can be taken by any
-- role with any key, so a login role without a single grant could stall deliveries.
-- Slots 0-65,535: row buckets (_row_lock_slot); 65,536-81,919: named locks (_lock_slot).
-- About 3 MB. No grant to anyone: taking a row lock needs UPDATE on the table.
CREATE TABLE IF NOT EXISTS optiqoflow.lock_slots (
    slot integer PRIMARY KEY CHECK (slot >= 0 AND slot < 81920)
);
COMMENT ON TABLE optiqoflow.lock_slots IS
    'The locks of deliveries, one row each (0-65,535 row buckets, 65,536-81,919 named locks), locked with SELECT ... FOR UPDATE by the owner''s functions only; never written after the migration. No role but the owner has any privilege on it.';
REVOKE ALL ON optiqoflow.lock_slots FROM PUBLIC;
INSERT INTO optiqoflow.lock_slots (slot)
SELECT s FROM generate_series(0, 81919) s
ON CONFLICT (slot) DO NOTHING;
