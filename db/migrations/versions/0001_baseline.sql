-- The baseline, part one: schemas, roles, bookkeeping tables, the 21 target tables and
-- the dashboard's own tables. Then the function files (frozen/0001_baseline), then
-- 0001_baseline_after_functions.sql. Never edited after release: later changes are
-- later revisions.

-- Roles as on Supabase; created NOLOGIN when missing (plain PostgreSQL).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'anon') THEN
        CREATE ROLE anon NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'authenticated') THEN
        CREATE ROLE authenticated NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'service_role') THEN
        CREATE ROLE service_role NOLOGIN BYPASSRLS;
    END IF;
    -- group of the roles a DBA gives exactly one tenant (tenants.grant_tenant)
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'optiqoflow_tenant_reader') THEN
        CREATE ROLE optiqoflow_tenant_reader NOLOGIN;
    END IF;
END
$roles$;

CREATE SCHEMA optiqoflow;
COMMENT ON SCHEMA optiqoflow IS 'optiqoflow: data synced from the Optiqo platform, and its bookkeeping';
CREATE SCHEMA tenants;
COMMENT ON SCHEMA tenants IS 'optiqoflow: per-tenant views and per-tenant bookkeeping';

-- Generated per-table writer functions (optiqoflow._writer): static SQL whose plans
-- PostgreSQL caches, generated again when a table's columns change. Not edited by hand.
CREATE SCHEMA optiqoflow_gen;
COMMENT ON SCHEMA optiqoflow_gen IS 'optiqoflow: generated per-table writer functions (see optiqoflow._writer); never edited by hand';
REVOKE ALL ON SCHEMA optiqoflow_gen FROM PUBLIC;

REVOKE ALL ON SCHEMA optiqoflow FROM PUBLIC;
REVOKE ALL ON SCHEMA tenants FROM PUBLIC;
GRANT USAGE ON SCHEMA optiqoflow TO authenticated, service_role;
GRANT USAGE ON SCHEMA tenants TO authenticated, service_role, optiqoflow_tenant_reader;
GRANT USAGE ON SCHEMA optiqoflow TO optiqoflow_tenant_reader;

-- Source table -> target table, and what to do with keys the target does not have.
CREATE TABLE optiqoflow.table_mappings (
    source_table     text PRIMARY KEY,
    target_table     text NOT NULL UNIQUE,
    schema_evolution text NOT NULL DEFAULT 'add',
    created_at       timestamptz NOT NULL DEFAULT now(),
    note             text,
    CONSTRAINT table_mappings_source_table_is_identifier
        CHECK (source_table ~ '^[a-z_][a-z0-9_]{0,62}$'),
    -- "{tenant_uuid}_" takes 37 of PostgreSQL's 63 bytes: a longer target name would be
    -- silently truncated in its view names (PostgreSQL cuts names at 63 bytes with
    -- only a notice), so it is refused here.
    CONSTRAINT table_mappings_target_table_fits_view_names
        CHECK (target_table ~ '^[a-z_][a-z0-9_]{0,25}$'),
    CONSTRAINT table_mappings_target_table_not_reserved
        CHECK (target_table NOT LIKE '\_of\_%'
               AND target_table NOT IN ('table_mappings', 'webhook_logs', 'tombstones',
                                        'delivery_keys', 'sync_runs', 'sync_run_batches',
                                        'refused_deliveries', 'sync_health')),
    CONSTRAINT table_mappings_schema_evolution_policy
        CHECK (schema_evolution IN ('add', 'ignore', 'refuse'))
);
COMMENT ON TABLE optiqoflow.table_mappings IS
    'Optiqo source table -> optiqoflow target table, with the schema-evolution policy (add | ignore | refuse) for keys the target lacks. A DBA adds a mapping with one INSERT; its target table is created on the first push.';

-- Deleted rows: kept here, never as rows of the target tables. A write older than (or
-- as old as) the tombstone is stale.
CREATE TABLE optiqoflow.tombstones (
    tenant_id      uuid NOT NULL,
    target_table   text NOT NULL,
    id             uuid NOT NULL,
    version        timestamptz NOT NULL,
    deleted_at     timestamptz NOT NULL DEFAULT now(),
    webhook_log_id bigint,
    CONSTRAINT tombstones_pkey PRIMARY KEY (tenant_id, target_table, id)
);
COMMENT ON TABLE optiqoflow.tombstones IS
    'Deleted rows of the target tables: the version they were deleted at blocks a late older write.';

-- De-duplication keys (delivery ids and event ids), kept for the retention period.
CREATE TABLE optiqoflow.delivery_keys (
    key            text PRIMARY KEY,
    seen_at        timestamptz NOT NULL DEFAULT now(),
    webhook_log_id bigint
);
COMMENT ON TABLE optiqoflow.delivery_keys IS
    'Delivery ids (d:...) and event ids (e:...) already applied; a delivery naming one is a duplicate. Kept as long as the logs: optiqoflow.prune_logs(retention, default 7 days) deletes older ones.';
CREATE INDEX delivery_keys_seen_at ON optiqoflow.delivery_keys (seen_at);

-- One row per delivery, whatever its outcome. Partitioned by day on received_at
-- (partitions webhook_logs_pYYYYMMDD, UTC days), so old logs go by DROP TABLE instead of
-- DELETE: optiqoflow.prune_logs() creates the coming days' partitions and drops those
-- past the retention. The DEFAULT partition catches any row no daily partition covers
-- (pruning not scheduled yet, clock skew), so an insert never fails; prune_logs moves
-- such rows into their day's partition when it creates it. A unique key on a partitioned
-- table must include the partition key: de-duplication keys and refused
-- deliveries live in their own tables (delivery_keys, refused_deliveries).
CREATE TABLE optiqoflow.webhook_logs (
    id             bigint GENERATED BY DEFAULT AS IDENTITY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    tenant_id      uuid,
    source_table   text,
    target_table   text,
    operation      text,
    outcome        text NOT NULL,
    rows           bigint NOT NULL DEFAULT 0,
    duration_ms    numeric(12,3),
    error          text,
    sqlstate       text,
    detail         jsonb,
    payload        jsonb,
    raw_body       bytea,
    delivery_id    text,
    event_id       text,
    sync_run_id    bigint,
    replay_of      bigint,
    resolved_at    timestamptz,
    resolved_by    bigint,
    -- arrival minus the change's version (record updated_at, else occurred_at), for
    -- INSERT / UPDATE / DELETE; NULL for FULL_SYNC (a snapshot, not a change) and refusals
    lag_ms         bigint,
    CONSTRAINT webhook_logs_pkey PRIMARY KEY (id, received_at),
    CONSTRAINT webhook_logs_outcome
        CHECK (outcome IN ('applied', 'duplicate', 'stale', 'refused', 'unusable'))
) PARTITION BY RANGE (received_at);
COMMENT ON TABLE optiqoflow.webhook_logs IS
    'One row per delivery, partitioned by day (received_at, UTC); optiqoflow.prune_logs() drops partitions past the retention. payload is kept for refused deliveries, raw_body for bodies that could not become jsonb; both are also in refused_deliveries until resolved, and can be replayed (optiqoflow.replay_webhook).';
CREATE TABLE optiqoflow.webhook_logs_default PARTITION OF optiqoflow.webhook_logs DEFAULT;
COMMENT ON TABLE optiqoflow.webhook_logs_default IS
    'Rows of webhook_logs that no daily partition covers; prune_logs moves them into their day''s partition when it creates it, and deletes those past the retention.';
CREATE INDEX webhook_logs_received_at ON optiqoflow.webhook_logs (received_at);
CREATE INDEX webhook_logs_tenant_table ON optiqoflow.webhook_logs (tenant_id, target_table, received_at);

-- Refused and unusable deliveries, kept until resolved (replayed successfully, or marked
-- by a DBA), whatever happens to the log partitions. Written in the same transaction as
-- their webhook_logs row (same id and received_at); a replay that is refused again does
-- not add a row, it counts on the original's.
CREATE TABLE optiqoflow.refused_deliveries (
    log_id         bigint PRIMARY KEY,
    received_at    timestamptz NOT NULL,
    tenant_id      uuid,
    source_table   text,
    target_table   text,
    operation      text,
    outcome        text NOT NULL,
    error          text,
    sqlstate       text,
    payload        jsonb,
    raw_body       bytea,
    delivery_id    text,
    event_id       text,
    replays        integer NOT NULL DEFAULT 0,
    last_replay_at timestamptz,
    last_replay_log_id bigint,
    resolved_at    timestamptz,
    resolved_by    bigint,
    CONSTRAINT refused_deliveries_outcome CHECK (outcome IN ('refused', 'unusable'))
);
COMMENT ON TABLE optiqoflow.refused_deliveries IS
    'Refused and unusable deliveries until resolved: payload (or raw_body) to repair and replay (optiqoflow.replay_webhook, `optiqoflow replay`). resolved_by is the webhook_logs id of the replay that resolved it. Resolved rows are pruned after the retention; waiting ones are kept.';
CREATE INDEX refused_deliveries_waiting ON optiqoflow.refused_deliveries (received_at)
    WHERE resolved_at IS NULL;
CREATE INDEX refused_deliveries_waiting_tenant ON optiqoflow.refused_deliveries (tenant_id, target_table)
    WHERE resolved_at IS NULL;
CREATE INDEX refused_deliveries_resolved ON optiqoflow.refused_deliveries (resolved_at)
    WHERE resolved_at IS NOT NULL;

-- FULL_SYNC runs and the batches each has received.
CREATE TABLE optiqoflow.sync_runs (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    target_table   text NOT NULL,
    sync_id        text,
    total          bigint,
    state          text NOT NULL DEFAULT 'running',
    started_at     timestamptz NOT NULL DEFAULT now(),
    start_snapshot pg_snapshot NOT NULL,
    covered        int8multirange NOT NULL DEFAULT '{}',
    batches        integer NOT NULL DEFAULT 0,
    records        bigint NOT NULL DEFAULT 0,
    stale          bigint NOT NULL DEFAULT 0,
    last_batch_at  timestamptz,
    finished_at    timestamptz,
    removed        bigint,
    -- the earliest occurred_at of its batches: when the source read its snapshot
    source_snapshot_at timestamptz,
    CONSTRAINT sync_runs_state CHECK (state IN ('running', 'complete', 'abandoned')),
    CONSTRAINT sync_runs_total CHECK (total IS NULL OR total >= 0),
    CONSTRAINT sync_runs_sync_id_key UNIQUE (tenant_id, target_table, sync_id)
);
COMMENT ON TABLE optiqoflow.sync_runs IS
    'FULL_SYNC runs per tenant x target table: state running | complete | abandoned, the offsets covered so far, and what completion removed.';
CREATE INDEX sync_runs_current ON optiqoflow.sync_runs (tenant_id, target_table, id DESC);

CREATE TABLE optiqoflow.sync_run_batches (
    tenant_id      uuid NOT NULL,
    run_id         bigint NOT NULL,
    batch_offset   bigint NOT NULL,
    records        integer NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    webhook_log_id bigint,
    CONSTRAINT sync_run_batches_pkey PRIMARY KEY (tenant_id, run_id, batch_offset)
);
COMMENT ON TABLE optiqoflow.sync_run_batches IS
    'The batches (by offset) a FULL_SYNC run has received: a batch that arrives again is a duplicate.';

-- Roles that connect with SQL directly (a BI tool, a dashboard service), each given
-- exactly one tenant by a DBA (tenants.grant_tenant). A role reads only its own row,
-- and nobody but the owner and service_role writes here: a session cannot widen its
-- tenant by anything it can set itself (a session can set request.jwt.claims at will).
CREATE TABLE tenants.role_tenants (
    role_name  name PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tenants.role_tenants IS
    'The one tenant each directly-connecting role may read (set with tenants.grant_tenant). Each role sees only its own row.';
ALTER TABLE tenants.role_tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_row ON tenants.role_tenants FOR SELECT TO PUBLIC USING (role_name = current_user);
REVOKE ALL ON tenants.role_tenants FROM PUBLIC;
GRANT SELECT ON tenants.role_tenants TO authenticated, optiqoflow_tenant_reader;
GRANT ALL ON tenants.role_tenants TO service_role;

-- Per-tenant bookkeeping.
CREATE TABLE tenants.tenant_column_access (
    tenant_id   uuid NOT NULL,
    table_name  text NOT NULL,
    columns     text[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    view_regenerations   bigint NOT NULL DEFAULT 0,
    views_regenerated_at timestamptz,
    CONSTRAINT tenant_column_access_pkey PRIMARY KEY (tenant_id, table_name)
);
COMMENT ON TABLE tenants.tenant_column_access IS
    'The columns each tenant has pushed (a non-null value at least once) per target table: the sorted union over time. Its tenant views show exactly these (plus id and tenant_id).';

CREATE TABLE tenants.tenant_data_push_log (
    id             bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    tables         text[] NOT NULL,
    operation      text NOT NULL,
    rows           bigint NOT NULL,
    pushed_at      timestamptz NOT NULL DEFAULT now(),
    webhook_log_id bigint
);
COMMENT ON TABLE tenants.tenant_data_push_log IS
    'One row per applied delivery: tenant, target tables changed, operation, rows, and its webhook_logs id. optiqoflow.prune_logs deletes rows past the retention (per tenant, by this index).';
CREATE INDEX tenant_data_push_log_tenant ON tenants.tenant_data_push_log (tenant_id, pushed_at);

-- The dashboard's own tables.
CREATE TABLE public.charts (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid,
    title        text NOT NULL DEFAULT '',
    query        text NOT NULL DEFAULT '',
    cache_status text NOT NULL DEFAULT 'fresh',
    stale_since  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT charts_cache_status CHECK (cache_status IN ('fresh', 'stale', 'refreshing'))
);
COMMENT ON TABLE public.charts IS 'Dashboard charts: their SQL (query) and whether their cached data is fresh.';
CREATE INDEX charts_tenant ON public.charts (tenant_id);

CREATE TABLE public.chart_data_cache (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    chart_id         uuid NOT NULL REFERENCES public.charts (id) ON DELETE CASCADE,
    tenant_id        uuid NOT NULL,
    cache_key        text NOT NULL DEFAULT '',
    data             jsonb,
    is_valid         boolean NOT NULL DEFAULT true,
    generation       bigint NOT NULL DEFAULT 0,
    refresh_started_at timestamptz,
    computed_at      timestamptz,
    invalidated_at   timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE public.chart_data_cache IS
    'Cached chart data per chart x tenant (x cache_key). generation moves on every invalidation, so a refill computed before an invalidation cannot be marked valid after it.';
CREATE INDEX chart_data_cache_tenant ON public.chart_data_cache (tenant_id, chart_id, cache_key);

CREATE TABLE public.chart_table_dependencies (
    chart_id   uuid NOT NULL REFERENCES public.charts (id) ON DELETE CASCADE,
    table_name text NOT NULL,
    CONSTRAINT chart_table_dependencies_pkey PRIMARY KEY (chart_id, table_name)
);
COMMENT ON TABLE public.chart_table_dependencies IS
    'Which target tables each chart reads (maintained by `optiqoflow charts deps`).';
CREATE INDEX chart_table_dependencies_table ON public.chart_table_dependencies (table_name, chart_id);

INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES
    ('adhoc_work_orders', 'work_orders'),
    ('attendance_events', 'attendance_events'),
    ('zone_categories', 'zones'),
    ('customer_accounts', 'customers'),
    ('customer_sites', 'sites'),
    ('site_floors', 'floors'),
    ('site_rooms', 'rooms'),
    ('cleaning_tasks', 'tasks'),
    ('task_completions', 'task_completions'),
    ('recurring_work_orders', 'scheduled_work_orders'),
    ('quality_audits', 'audits'),
    ('quality_audit_results', 'audit_results'),
    ('deviation_reports', 'deviations'),
    ('customer_feedback', 'feedback'),
    ('staff_members', 'employees'),
    ('staff_teams', 'teams'),
    ('shift_assignments', 'shifts'),
    ('time_entries', 'time_entries'),
    ('absence_records', 'absences'),
    ('supply_orders', 'supply_orders'),
    ('sensor_readings', 'sensor_readings');

-- source: optiqo.adhoc_work_orders
CREATE TABLE optiqoflow.work_orders (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    zone_id                     uuid,
    title                       text,
    description                 text,
    status                      text,
    priority                    smallint,
    requested_by                text,
    assignee_id                 uuid,
    due_at                      timestamptz,
    completed_at                timestamptz,
    estimated_minutes           integer,
    cost_eur                    numeric(12,2),
    billable                    boolean,
    tags                        text[],
    metadata                    jsonb,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT work_orders_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.attendance_events
CREATE TABLE optiqoflow.attendance_events (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    employee_id                 uuid,
    site_id                     uuid,
    event_type                  text,
    occurred_at                 timestamptz,
    source                      text,
    latitude                    double precision,
    longitude                   double precision,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT attendance_events_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.zone_categories
CREATE TABLE optiqoflow.zones (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    name                        text,
    code                        text,
    cleaning_frequency_per_week numeric(5,2),
    risk_level                  smallint,
    color                       text,
    active                      boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT zones_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.customer_accounts
CREATE TABLE optiqoflow.customers (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    name                        text,
    business_id                 text,
    contact_email               text,
    contact_phone               text,
    contract_start              date,
    contract_end                date,
    monthly_value_eur           numeric(12,2),
    active                      boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT customers_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.customer_sites
CREATE TABLE optiqoflow.sites (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    customer_id                 uuid,
    name                        text,
    street_address              text,
    city                        text,
    postal_code                 text,
    country_code                text,
    floor_area_m2               numeric(10,2),
    timezone                    text,
    latitude                    double precision,
    longitude                   double precision,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT sites_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.site_floors
CREATE TABLE optiqoflow.floors (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    name                        text,
    level                       integer,
    area_m2                     numeric(10,2),
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT floors_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.site_rooms
CREATE TABLE optiqoflow.rooms (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    floor_id                    uuid,
    zone_id                     uuid,
    name                        text,
    room_number                 text,
    area_m2                     numeric(10,2),
    room_type                   text,
    qr_code                     text,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT rooms_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.cleaning_tasks
CREATE TABLE optiqoflow.tasks (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    room_id                     uuid,
    zone_id                     uuid,
    name                        text,
    instructions                text,
    frequency                   text,
    planned_minutes             integer,
    weekdays                    smallint[],
    active                      boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT tasks_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.task_completions
CREATE TABLE optiqoflow.task_completions (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    task_id                     uuid,
    employee_id                 uuid,
    completed_at                timestamptz,
    duration_minutes            integer,
    status                      text,
    note                        text,
    photo_urls                  text[],
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT task_completions_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.recurring_work_orders
CREATE TABLE optiqoflow.scheduled_work_orders (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    title                       text,
    rrule                       text,
    next_run_at                 timestamptz,
    last_run_at                 timestamptz,
    assignee_id                 uuid,
    estimated_minutes           integer,
    active                      boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT scheduled_work_orders_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.quality_audits
CREATE TABLE optiqoflow.audits (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    auditor_id                  uuid,
    audit_type                  text,
    started_at                  timestamptz,
    finished_at                 timestamptz,
    score                       numeric(5,2),
    passed                      boolean,
    quality_level               smallint,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT audits_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.quality_audit_results
CREATE TABLE optiqoflow.audit_results (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    audit_id                    uuid,
    room_id                     uuid,
    criterion                   text,
    result                      text,
    defect_count                integer,
    comment                     text,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT audit_results_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.deviation_reports
CREATE TABLE optiqoflow.deviations (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    room_id                     uuid,
    reported_by                 text,
    category                    text,
    severity                    smallint,
    description                 text,
    resolved_at                 timestamptz,
    work_order_id               uuid,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT deviations_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.customer_feedback
CREATE TABLE optiqoflow.feedback (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    room_id                     uuid,
    rating                      smallint,
    comment                     text,
    channel                     text,
    submitted_at                timestamptz,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT feedback_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.staff_members
CREATE TABLE optiqoflow.employees (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    team_id                     uuid,
    first_name                  text,
    last_name                   text,
    email                       text,
    phone                       text,
    role                        text,
    employment_type             text,
    hourly_cost_eur             numeric(8,2),
    active                      boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT employees_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.staff_teams
CREATE TABLE optiqoflow.teams (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    name                        text,
    supervisor_id               uuid,
    region                      text,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT teams_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.shift_assignments
CREATE TABLE optiqoflow.shifts (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    employee_id                 uuid,
    site_id                     uuid,
    starts_at                   timestamptz,
    ends_at                     timestamptz,
    break_minutes               integer,
    status                      text,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT shifts_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.time_entries
CREATE TABLE optiqoflow.time_entries (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    employee_id                 uuid,
    work_order_id               uuid,
    site_id                     uuid,
    started_at                  timestamptz,
    ended_at                    timestamptz,
    minutes                     integer,
    approved                    boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT time_entries_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.absence_records
CREATE TABLE optiqoflow.absences (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    employee_id                 uuid,
    absence_type                text,
    starts_on                   date,
    ends_on                     date,
    approved                    boolean,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT absences_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.supply_orders
CREATE TABLE optiqoflow.supply_orders (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    site_id                     uuid,
    ordered_by                  uuid,
    items                       jsonb,
    total_eur                   numeric(12,2),
    status                      text,
    ordered_at                  timestamptz,
    delivered_at                timestamptz,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT supply_orders_pkey PRIMARY KEY (tenant_id, id)
);

-- source: optiqo.sensor_readings
CREATE TABLE optiqoflow.sensor_readings (
    id                          uuid NOT NULL,
    tenant_id                   uuid NOT NULL,
    sensor_id                   text,
    room_id                     uuid,
    measured_at                 timestamptz,
    visitor_count               integer,
    occupancy_pct               numeric(5,2),
    battery_pct                 smallint,
    created_at                  timestamptz,
    updated_at                  timestamptz NOT NULL,
    _of_written_at              timestamptz NOT NULL DEFAULT now(),
    _of_xid                     xid8 DEFAULT pg_current_xact_id(),
    _of_sync_run                bigint,
    CONSTRAINT sensor_readings_pkey PRIMARY KEY (tenant_id, id)
);
