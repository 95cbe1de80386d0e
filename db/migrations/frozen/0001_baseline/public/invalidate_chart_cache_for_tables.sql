CREATE OR REPLACE FUNCTION public.invalidate_chart_cache_for_tables(
    p_tenant_id uuid,
    p_tables    text[]
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Mark stale what new data of a tenant in the given target tables made stale: that
-- tenant's cache entries of every chart that depends on one of the tables (is_valid
-- false, generation + 1, invalidated_at), and those charts of the tenant (cache_status
-- 'stale'). Rows already invalid / stale are not rewritten, so the batches of one
-- FULL_SYNC cost one real invalidation, not one each. An entry a dashboard is refilling
-- (refresh_started_at set) is invalidated again, so a refill computed before this cannot
-- be marked valid after it (see docs/semantics.md, "Refilling a cache entry").
-- When anything was made stale, NOTIFY optiqoflow_invalidation with
-- {"tenant_id", "tables", "charts"}: delivered at commit, never before the data is visible.
-- When the chart list would not fit in a notification (8000 bytes), "charts" is null and
-- "chart_count" says how many: refresh every chart of the tenant that reads "tables".
-- Returns {"entries": n, "charts": [chart ids made stale or with entries invalidated]}.
DECLARE
    v_entries bigint;
    v_charts  uuid[];
    v_payload text;
BEGIN
    -- most pushes touch tables no chart reads: one index probe, then nothing to do
    IF p_tenant_id IS NULL OR p_tables IS NULL OR cardinality(p_tables) = 0
       OR NOT EXISTS (SELECT FROM public.chart_table_dependencies d WHERE d.table_name = ANY (p_tables)) THEN
        RETURN jsonb_build_object('entries', 0, 'charts', '[]'::jsonb);
    END IF;

    WITH entries AS (
        UPDATE public.chart_data_cache c
           SET is_valid = false, generation = c.generation + 1,
               invalidated_at = now(), refresh_started_at = NULL
         WHERE c.tenant_id = p_tenant_id
           AND c.chart_id IN (SELECT d.chart_id FROM public.chart_table_dependencies d
                               WHERE d.table_name = ANY (p_tables))
           AND (c.is_valid OR c.refresh_started_at IS NOT NULL)
        RETURNING c.chart_id
    )
    SELECT count(*), array_agg(DISTINCT chart_id) INTO v_entries, v_charts FROM entries;

    -- A statement of its own: its snapshot is taken after the one above has waited for
    -- any dashboard holding an entry, so a chart that dashboard just marked fresh is seen
    -- fresh here and made stale again.
    WITH charts AS (
        UPDATE public.charts ch
           SET cache_status = 'stale', stale_since = now()
         WHERE ch.tenant_id = p_tenant_id AND ch.cache_status <> 'stale'
           AND ch.id IN (SELECT d.chart_id FROM public.chart_table_dependencies d
                          WHERE d.table_name = ANY (p_tables))
        RETURNING ch.id
    )
    SELECT array_agg(DISTINCT x ORDER BY x)
      INTO v_charts
      FROM (SELECT unnest(v_charts) AS x UNION SELECT id FROM charts) u;

    IF v_charts IS NOT NULL THEN
        v_payload := jsonb_build_object('tenant_id', p_tenant_id, 'tables', to_jsonb(p_tables),
                                        'charts', to_jsonb(v_charts))::text;
        IF octet_length(v_payload) >= 8000 THEN   -- NOTIFY's limit: say "all of them"
            v_payload := jsonb_build_object('tenant_id', p_tenant_id, 'tables', to_jsonb(p_tables),
                                            'charts', NULL, 'chart_count', cardinality(v_charts))::text;
        END IF;
        PERFORM pg_notify('optiqoflow_invalidation', v_payload);
    END IF;
    RETURN jsonb_build_object('entries', v_entries, 'charts', coalesce(to_jsonb(v_charts), '[]'::jsonb));
END
$$;

COMMENT ON FUNCTION public.invalidate_chart_cache_for_tables(uuid, text[]) IS
    'Invalidates a tenant''s chart cache entries and marks its charts stale for the charts that depend on any of the given target tables; rows already invalid/stale are not rewritten. NOTIFYs optiqoflow_invalidation at commit when anything became stale. Returns {entries, charts}.';
REVOKE ALL ON FUNCTION public.invalidate_chart_cache_for_tables(uuid, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.invalidate_chart_cache_for_tables(uuid, text[]) TO service_role;
