CREATE OR REPLACE FUNCTION optiqoflow._reconcile(p_tenant_id uuid, p_table text, p_payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A RECONCILE delivery (docs/payloads.md, RECONCILE): compares a source's bucket figures
-- of one tenant x table with ours (optiqoflow.bucket_fingerprints) and answers the
-- buckets that differ, with our figures. Reads only; called by apply_webhook, which logs
-- it and never treats it as a duplicate.
--     {"type": "RECONCILE", "table": ..., "tenant_id": ..., "read_at": "<ISO 8601>",
--      "digits": 2 | 4, "within": ["3f", ...], "pairs": true | false,
--      "buckets": {"3f": {"rows": 12, "checksum": "-81985529216486895"}, ...}}
-- digits 2 (default): the 256 buckets (or those in "within"); digits 4: the sub-buckets
-- of the 2-digit buckets in "within" (1 to 16 of them). A bucket of the scope that
-- "buckets" leaves out has no rows at the source. "pairs": for each differing bucket
-- where we hold at most 64 rows, our (id, version) pairs, for at most 64 buckets.
-- "sub_buckets": true (2 digits only): the same one read of our rows also gives our
-- figures of the sub-buckets of the first 16 differing buckets ("sub_buckets_of"), so a
-- source that computed its sub-bucket figures in its own one read finds the differing
-- sub-buckets without a second RECONCILE.
-- "ours": true (without "buckets", "pairs" or "sub_buckets"): compares nothing and answers
-- our figures of every bucket of the scope where we hold rows, so a source can read its
-- rows while we read ours and compare the figures itself.
--
-- Bounds (whatever the sender, signing secret included): at most 256 figures at 2 digits
-- and 4,096 at 4; at most 4,096 pairs and 4,096 sub-bucket figures answered; cost, two
-- reads of the tenant's rows of
-- the table at most (figures, then pairs), plus a pass over the body, which the
-- receiver's body limit bounds.
--
-- Returns {"status": "applied", "table", "rows": 0, "digits", "within", "compared",
--          "differing", "buckets": [{"bucket", "rows", "checksum"[, "pairs"]}],
--          "pairs_left_out", "sub_buckets_of", "sub_buckets", "read_at"}; with "ours":
-- {"status", "table", "rows": 0, "digits", "within", "ours": true, "buckets" (every
-- non-empty bucket of the scope, with our figures), "read_at"}; malformed figures raise
-- OF026 (refused).
DECLARE
    v_table    text := (optiqoflow._target_table(p_table)).target_table;
    v_digits   integer := 2;
    v_within   text[];
    v_theirs   jsonb := p_payload -> 'buckets';
    v_pairs    boolean := false;
    v_sub      boolean := false;
    v_only_ours boolean := false;   -- "ours": answer our figures, compare nothing
    v_ours     jsonb;   -- bucket -> [rows, checksum], ours, at v_digits
    v_ours4    jsonb;   -- the same at 4 digits, with sub_buckets
    v_deep     text[];
    v_subfigs  jsonb;
    v_bad      text;
    v_diff     jsonb;
    v_asked    text[];
    v_found    jsonb;
    v_left_out integer := 0;
    c_max_pair_rows    constant integer := 64;
    c_max_pair_buckets constant integer := 64;
BEGIN
    -- a closed (erased) tenant is answered nothing, and its log row names it not
    PERFORM optiqoflow._refuse_closed_tenant(p_tenant_id);
    IF jsonb_typeof(p_payload -> 'read_at') IS DISTINCT FROM 'string'
       OR NOT optiqoflow._is_iso_timestamp_text(p_payload ->> 'read_at') THEN
        RAISE EXCEPTION 'RECONCILE without read_at'
            USING ERRCODE = 'OF026',
                  HINT = 'read_at is when the source read its figures, ISO 8601, e.g. "2026-12-07T10:00:00Z".';
    END IF;
    PERFORM (p_payload ->> 'read_at')::timestamptz;   -- an impossible date: 22008, refused
    IF jsonb_typeof(p_payload -> 'digits') IS DISTINCT FROM 'null' AND p_payload ? 'digits' THEN
        IF jsonb_typeof(p_payload -> 'digits') <> 'number' OR (p_payload ->> 'digits') NOT IN ('2', '4') THEN
            RAISE EXCEPTION 'RECONCILE digits is 2 or 4'
                USING ERRCODE = 'OF026', HINT = '"digits": 2 (the 256 buckets) or 4 (sub-buckets, with "within").';
        END IF;
        v_digits := (p_payload ->> 'digits')::integer;
    END IF;
    IF jsonb_typeof(p_payload -> 'within') IS DISTINCT FROM 'null' AND p_payload ? 'within' THEN
        IF jsonb_typeof(p_payload -> 'within') <> 'array'
           OR jsonb_array_length(p_payload -> 'within') NOT BETWEEN 1 AND 16
           OR EXISTS (SELECT FROM jsonb_array_elements(p_payload -> 'within') w
                       WHERE jsonb_typeof(w) <> 'string' OR w #>> '{}' !~ '^[0-9a-f]{2}$') THEN
            RAISE EXCEPTION 'RECONCILE within is a list of 1 to 16 buckets of 2 hex digits'
                USING ERRCODE = 'OF026', HINT = 'e.g. "within": ["3f", "a0"] (lower case).';
        END IF;
        v_within := ARRAY(SELECT DISTINCT w FROM jsonb_array_elements_text(p_payload -> 'within') w ORDER BY 1);
    END IF;
    IF v_digits = 4 AND v_within IS NULL THEN
        RAISE EXCEPTION 'RECONCILE of sub-buckets names the buckets they are in'
            USING ERRCODE = 'OF026', HINT = 'With "digits": 4, send "within": [up to 16 buckets of 2 hex digits].';
    END IF;
    v_pairs := optiqoflow._payload_flag(p_payload, 'pairs',
                                        '"pairs": true asks for our (id, version) pairs of small differing buckets.');
    v_sub := optiqoflow._payload_flag(p_payload, 'sub_buckets',
                                      '"sub_buckets": true asks for our sub-bucket figures of the differing buckets.');
    IF v_sub AND v_digits <> 2 THEN
        RAISE EXCEPTION 'RECONCILE sub_buckets goes with buckets of 2 digits'
            USING ERRCODE = 'OF026', HINT = 'Send "digits": 2 (or none) with "sub_buckets": true.';
    END IF;
    v_only_ours := optiqoflow._payload_flag(p_payload, 'ours',
                                            '"ours": true asks for our figures of every bucket of the scope, compared by the source.');
    IF v_only_ours THEN
        IF (p_payload ? 'buckets' AND jsonb_typeof(v_theirs) <> 'null') OR v_pairs OR v_sub THEN
            RAISE EXCEPTION 'RECONCILE with ours compares nothing'
                USING ERRCODE = 'OF026',
                      HINT = 'With "ours": true, send no "buckets", "pairs" or "sub_buckets": the source compares our figures with its own.';
        END IF;
        -- one read of our rows, as for a comparison; at most 256 figures, or 16 x 256
        SELECT coalesce(jsonb_agg(jsonb_build_object('bucket', f.bucket, 'rows', f.row_count,
                                                     'checksum', f.checksum::text) ORDER BY f.bucket), '[]')
          INTO v_diff
          FROM optiqoflow.bucket_fingerprints(p_tenant_id, v_table, v_digits, v_within) f;
        RETURN jsonb_strip_nulls(jsonb_build_object(
            'status', 'applied', 'table', v_table, 'rows', 0,
            'digits', v_digits, 'within', to_jsonb(v_within), 'ours', true,
            'buckets', v_diff, 'read_at', p_payload -> 'read_at'));
    END IF;
    IF jsonb_typeof(v_theirs) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'RECONCILE without buckets'
            USING ERRCODE = 'OF026',
                  HINT = '"buckets": {"3f": {"rows": 12, "checksum": "..."}, ...}; a bucket left out has no rows (or "ours": true for our figures).';
    END IF;
    -- every key a bucket of the scope (so at most 256, or 16 x 256), every value its figures
    SELECT x.k INTO v_bad
      FROM jsonb_each(v_theirs) AS x(k, v)
     WHERE NOT coalesce(
               x.k ~ CASE v_digits WHEN 2 THEN '^[0-9a-f]{2}$' ELSE '^[0-9a-f]{4}$' END
           AND (v_within IS NULL OR left(x.k, 2) = ANY (v_within))
           AND jsonb_typeof(x.v) = 'object'
           AND jsonb_typeof(x.v -> 'rows') = 'number'
           AND (x.v ->> 'rows') ~ '^[0-9]{1,18}$'
           AND jsonb_typeof(x.v -> 'checksum') IN ('string', 'number')
           AND (x.v ->> 'checksum') ~ '^-?[0-9]{1,40}$', false)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'RECONCILE bucket % is not a bucket of the scope with its figures', left(v_bad, 40)
            USING ERRCODE = 'OF026',
                  HINT = format('Keys are buckets of %s lower-case hex digits%s; values {"rows": n, "checksum": "decimal"}.',
                                v_digits, CASE WHEN v_within IS NOT NULL THEN ' starting with one of "within"' ELSE '' END);
    END IF;

    -- one read of our rows: at 4 digits when the sub-buckets are asked for (and rolled up)
    IF v_sub THEN
        SELECT coalesce(jsonb_object_agg(f.bucket, jsonb_build_array(f.row_count, f.checksum)), '{}')
          INTO v_ours4
          FROM optiqoflow.bucket_fingerprints(p_tenant_id, v_table, 4, v_within) f;
        SELECT coalesce(jsonb_object_agg(r.bucket, jsonb_build_array(r.row_count, r.checksum)), '{}')
          INTO v_ours
          FROM (SELECT left(x.k, 2) AS bucket, sum((x.v ->> 0)::bigint) AS row_count,
                       sum((x.v ->> 1)::numeric) AS checksum
                  FROM jsonb_each(v_ours4) AS x(k, v) GROUP BY 1) r;
    ELSE
        SELECT coalesce(jsonb_object_agg(f.bucket, jsonb_build_array(f.row_count, f.checksum)), '{}')
          INTO v_ours
          FROM optiqoflow.bucket_fingerprints(p_tenant_id, v_table, v_digits, v_within) f;
    END IF;

    WITH ours AS (
        SELECT x.k AS bucket, (x.v ->> 0)::bigint AS row_count, (x.v ->> 1)::numeric AS checksum
          FROM jsonb_each(v_ours) AS x(k, v)
    ), theirs AS (
        SELECT x.k AS bucket, (x.v ->> 'rows')::bigint AS row_count, (x.v ->> 'checksum')::numeric AS checksum
          FROM jsonb_each(v_theirs) AS x(k, v)
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object('bucket', d.bucket, 'rows', d.row_count,
                                                 'checksum', d.checksum::text) ORDER BY d.bucket), '[]')
      INTO v_diff
      FROM (SELECT coalesce(o.bucket, t.bucket) AS bucket,
                   coalesce(o.row_count, 0) AS row_count, coalesce(o.checksum, 0) AS checksum
              FROM ours o FULL JOIN theirs t ON t.bucket = o.bucket
             WHERE coalesce(o.row_count, 0) <> coalesce(t.row_count, 0)
                OR coalesce(o.checksum, 0) <> coalesce(t.checksum, 0)) d;

    IF v_sub THEN
        v_deep := ARRAY(SELECT e ->> 'bucket' FROM jsonb_array_elements(v_diff) e ORDER BY 1 LIMIT 16);
        SELECT coalesce(jsonb_object_agg(x.k, jsonb_build_object('rows', (x.v ->> 0)::bigint,
                                                                 'checksum', x.v ->> 1)), '{}')
          INTO v_subfigs
          FROM jsonb_each(v_ours4) AS x(k, v) WHERE left(x.k, 2) = ANY (v_deep);
    END IF;

    IF v_pairs AND jsonb_array_length(v_diff) > 0 THEN
        v_asked := ARRAY(SELECT e ->> 'bucket' FROM jsonb_array_elements(v_diff) e
                          WHERE (e ->> 'rows')::bigint <= c_max_pair_rows
                          ORDER BY e ->> 'bucket' LIMIT c_max_pair_buckets);
        v_left_out := jsonb_array_length(v_diff) - cardinality(v_asked);
        IF cardinality(v_asked) > 0 THEN
            -- the version spelled as the checksum spells it: UTC, microseconds
            EXECUTE format(
                'SELECT coalesce(jsonb_object_agg(p.bucket, p.pairs), ''{}'') FROM ('
                '  SELECT left(md5(t.id::text), $3) AS bucket,'
                '         jsonb_agg(jsonb_build_array(t.id, to_char(t.updated_at AT TIME ZONE ''UTC'','
                '                   ''YYYY-MM-DD"T"HH24:MI:SS.US"Z"'')) ORDER BY t.id) AS pairs'
                '    FROM optiqoflow.%I t'
                '   WHERE t.tenant_id = $1 AND optiqoflow._in_buckets(t.id, $2, $3)'
                '   GROUP BY 1) p', v_table)
            INTO v_found USING p_tenant_id, v_asked, v_digits;
            SELECT jsonb_agg(CASE WHEN e ->> 'bucket' = ANY (v_asked)
                                  THEN e || jsonb_build_object('pairs', coalesce(v_found -> (e ->> 'bucket'), '[]'))
                                  ELSE e END ORDER BY e ->> 'bucket')
              INTO v_diff FROM jsonb_array_elements(v_diff) e;
        END IF;
    END IF;

    RETURN jsonb_strip_nulls(jsonb_build_object(
        'status', 'applied', 'table', v_table, 'rows', 0,
        'digits', v_digits, 'within', to_jsonb(v_within),
        'compared', CASE WHEN v_digits = 2 THEN coalesce(cardinality(v_within), 256)
                         ELSE 256 * cardinality(v_within) END,
        'differing', jsonb_array_length(v_diff),
        'buckets', v_diff,
        'pairs_left_out', CASE WHEN v_pairs THEN v_left_out END,
        'sub_buckets_of', to_jsonb(v_deep),
        'sub_buckets', v_subfigs,
        'read_at', p_payload -> 'read_at'));
END
$$;

COMMENT ON FUNCTION optiqoflow._reconcile(uuid, text, jsonb) IS
    'Internal: the answer to a RECONCILE delivery: the source''s bucket figures of a tenant x table compared with optiqoflow.bucket_fingerprints; the differing buckets with our figures (and, asked, our (id, version) pairs of small ones, or our sub-bucket figures of up to 16 of them); with "ours", our figures of every bucket, compared by the source. Reads only; bounded (256 or 4,096 figures, 4,096 pairs, 4,096 sub-bucket figures).';
REVOKE ALL ON FUNCTION optiqoflow._reconcile(uuid, text, jsonb) FROM PUBLIC;
