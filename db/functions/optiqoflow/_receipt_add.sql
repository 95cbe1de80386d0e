CREATE OR REPLACE FUNCTION optiqoflow._receipt_add(p_counts jsonb, p_object text, p_n bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- A receipt's counts ({"<object>": n, ...}) with p_n more for p_object: how
-- optiqoflow.erase_tenant adds what each bounded call removed or scrubbed to what the
-- calls before it did. A SQL-standard body: inlined into the expression that calls it.
RETURN p_counts || pg_catalog.jsonb_build_object(p_object, coalesce((p_counts ->> p_object)::bigint, 0) + p_n);

COMMENT ON FUNCTION optiqoflow._receipt_add(jsonb, text, bigint) IS
    'Internal: a receipt''s counts with p_n more for one object (erase_tenant). Inlined into the expressions that call it.';
REVOKE ALL ON FUNCTION optiqoflow._receipt_add(jsonb, text, bigint) FROM PUBLIC;
