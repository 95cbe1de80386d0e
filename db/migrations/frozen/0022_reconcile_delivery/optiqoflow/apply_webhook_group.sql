CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook_group(
    p_payloads     jsonb,
    p_delivery_ids text[] DEFAULT NULL
)
RETURNS TABLE (n integer, answer jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- Group commit (docs/group-commit.md): real-time deliveries that reached the receiver
-- while its connections were busy, applied in one transaction and one commit, each
-- exactly as apply_webhook(p_payloads -> (n - 1), p_delivery_ids[n]) alone: its own
-- answer, de-duplication key, log row, push log and invalidation; a refused one is kept
-- for replay without stopping the others. No envelope row and no delivery-id suffix: the
-- database holds afterwards what the separate calls would have left. Rows: (n, answer),
-- n the 1-based position. Every row lock of the group is taken first, in the global order
-- (_lock_events), so concurrent groups cannot deadlock on them; the events are then
-- applied tenant by tenant and table by table (in arrival order within each), so that
-- what they lock afterwards (tracking rows, chart caches, a new column's DDL lock) is
-- also taken in one order by every group. Events of one key keep their order; the order
-- of events of different tenants or tables does not change what they leave.
-- Only INSERT, UPDATE and DELETE (a FULL_SYNC or a BATCH takes locks that come before
-- row locks): a group with anything else raises OF020 and applies nothing; so does a
-- transient error, which rolls the whole group back. The receiver then applies that
-- group's deliveries one by one, each with apply_webhook.
DECLARE
    v_event jsonb;
BEGIN
    IF jsonb_typeof(p_payloads) IS DISTINCT FROM 'array'
       OR (p_delivery_ids IS NOT NULL AND cardinality(p_delivery_ids) <> jsonb_array_length(p_payloads)) THEN
        RAISE EXCEPTION 'a group is a JSON array of payloads, with as many delivery ids (or none)'
            USING ERRCODE = 'OF020',
                  HINT = 'SELECT * FROM optiqoflow.apply_webhook_group(''[{...}, {...}]'', ARRAY[''id-1'', ''id-2'']).';
    END IF;
    IF EXISTS (SELECT FROM jsonb_array_elements(p_payloads) AS x(e)
                WHERE jsonb_typeof(e) = 'object' AND upper(e ->> 'type') IN ('FULL_SYNC', 'BATCH', 'RECONCILE')) THEN
        RAISE EXCEPTION 'a group holds real-time events only (INSERT, UPDATE, DELETE)'
            USING ERRCODE = 'OF020',
                  HINT = 'Apply a FULL_SYNC batch or a BATCH envelope on its own with optiqoflow.apply_webhook.';
    END IF;
    IF NOT optiqoflow._rows_are_here() THEN
        -- a Citus coordinator: the row locks are the tenant's node's (_tenant_locks), which
        -- _lock_events does not take in one order across tenants
        RAISE EXCEPTION 'a group is applied only where the rows are (not on a Citus coordinator)'
            USING ERRCODE = 'OF020',
                  HINT = 'Apply each delivery with optiqoflow.apply_webhook (OPTIQO_GROUP_COMMIT=1).';
    END IF;
    PERFORM optiqoflow._lock_events(p_payloads);
    FOR v_event, n IN
        SELECT x.e, x.o::integer
          FROM jsonb_array_elements(p_payloads) WITH ORDINALITY AS x(e, o)
          JOIN optiqoflow._event_keys(p_payloads) k ON k.o = x.o
         ORDER BY k.tenant NULLS FIRST, k.target NULLS FIRST, x.o   -- NULL: refused, no locks
    LOOP
        answer := optiqoflow.apply_webhook(v_event, p_delivery_ids[n]);
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION optiqoflow.apply_webhook_group(jsonb, text[]) IS
    'Group commit: applies a JSON array of real-time payloads (INSERT | UPDATE | DELETE) in one transaction, each as apply_webhook(payload, p_delivery_ids[n]) would alone (own answer, log row, de-duplication, push log, invalidation). Returns (n, answer) per payload, n 1-based. Row locks first, in the global order, then the events tenant by tenant and table by table (arrival order within). Raises OF020 for a malformed group, a FULL_SYNC / BATCH in it, or on a Citus coordinator; transient errors roll the whole group back.';
REVOKE ALL ON FUNCTION optiqoflow.apply_webhook_group(jsonb, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.apply_webhook_group(jsonb, text[]) TO service_role;
