CREATE OR REPLACE FUNCTION optiqoflow._is_column_name(p_key text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- True when a record's key can name a column: ^[a-z_][a-z0-9_]{0,62}$, not one of
-- our _of_ bookkeeping names, and not the name of a system column that every table has
-- (xmin, xmax, cmin, cmax, ctid, tableoid: a catalog lookup finds them, so such a key
-- would be neither added nor ignored, and its value lost). The bounded repeat is written as * plus a length:
-- PostgreSQL's regex engine expands {0,62} into states, which costs ten times as much
-- per key. A SQL-standard body: inlined into the expression that calls it.
RETURN p_key ~ '^[a-z_][a-z0-9_]*$' AND pg_catalog.octet_length(p_key) <= 63 AND p_key !~ '^_of_'
       AND p_key NOT IN ('xmin', 'xmax', 'cmin', 'cmax', 'ctid', 'tableoid');

COMMENT ON FUNCTION optiqoflow._is_column_name(text) IS
    'Internal: true when a record key can name a column (^[a-z_][a-z0-9_]{0,62}$, not _of_..., not a system column name). Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._is_column_name(text) FROM PUBLIC;
