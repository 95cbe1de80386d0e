-- 0005, after the function files: the dashboard's charts readable from the browser, and
-- announced through Supabase Realtime where it runs.

-- authenticated reads its tenant's charts and the shared ones (tenant_id NULL), and its
-- tenant's cache entries (of its own and of the shared charts); nothing else, and it
-- changes nothing here: the cache status is the database's to set.
ALTER TABLE public.charts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.chart_data_cache ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant_reads_charts ON public.charts;
CREATE POLICY tenant_reads_charts ON public.charts FOR SELECT TO authenticated
    USING (tenant_id = tenants.claims_tenant_id() OR tenant_id IS NULL);
DROP POLICY IF EXISTS tenant_reads_cache ON public.chart_data_cache;
CREATE POLICY tenant_reads_cache ON public.chart_data_cache FOR SELECT TO authenticated
    USING (tenant_id = tenants.claims_tenant_id());
GRANT SELECT ON public.charts, public.chart_data_cache TO authenticated;

-- Supabase Realtime: a client subscribes to Postgres Changes of public.charts and
-- refetches a chart when its cache_status becomes 'stale' (row-level security decides
-- what each subscriber receives). REPLICA IDENTITY FULL: an UPDATE carries the old row
-- too, so a subscriber sees the change of status. Without the publication (plain
-- PostgreSQL) nothing is done; the README gives the statements. A publication this role
-- may not alter gets a warning with the statement to run.
DO $realtime$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_publication WHERE pubname = 'supabase_realtime') THEN
        ALTER TABLE public.charts REPLICA IDENTITY FULL;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_publication_tables
                        WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
                          AND tablename = 'charts') THEN
            BEGIN
                ALTER PUBLICATION supabase_realtime ADD TABLE public.charts;
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot add public.charts to the publication supabase_realtime'
                    USING HINT = 'As its owner: ALTER PUBLICATION supabase_realtime ADD TABLE public.charts;';
            END;
        END IF;
    END IF;
END
$realtime$;
