-- 0017, before the function files: column policies for personal data.
-- One row per target table x column with a policy other than the default `keep`:
-- `block` (never stored, in the table or a kept payload; not tracked, not in views) or
-- `hash` (stored as optiqoflow._keyed_hash of the value; text columns only). Written by
-- optiqoflow.set_column_policy only.
CREATE TABLE IF NOT EXISTS optiqoflow.column_policies (
    target_table text NOT NULL,
    column_name  text NOT NULL,
    policy       text NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT column_policies_pkey PRIMARY KEY (target_table, column_name),
    CONSTRAINT column_policies_policy CHECK (policy IN ('keep', 'block', 'hash')),
    CONSTRAINT column_policies_column CHECK (column_name ~ '^[a-z_][a-z0-9_]{0,62}$'
                                            AND column_name NOT IN ('id', 'tenant_id', 'updated_at')
                                            AND column_name NOT LIKE '\_of\_%')
);
COMMENT ON TABLE optiqoflow.column_policies IS
    'Column policies for personal data, per target table x column: keep (default, no row needed) | block (never stored, not tracked, not in views) | hash (stored as a keyed hash; text columns only). Set with optiqoflow.set_column_policy; applied from the next delivery; optiqoflow.apply_column_policies rewrites existing data.';
REVOKE ALL ON optiqoflow.column_policies FROM PUBLIC;
GRANT SELECT ON optiqoflow.column_policies TO service_role, optiqoflow_admin;

-- The key of the keyed hash: 64 random bytes, kept as key XOR ipad and key XOR opad
-- (HMAC-SHA-256 from the built-in sha256). No role but the owner may read it.
CREATE TABLE IF NOT EXISTS optiqoflow.column_hash_key (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    ikey       bytea NOT NULL CHECK (length(ikey) = 64),
    okey       bytea NOT NULL CHECK (length(okey) = 64),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE optiqoflow.column_hash_key IS
    'The key of the columns with policy hash (optiqoflow._keyed_hash), as key XOR ipad and key XOR opad. Readable by the owner only. Changing it changes every hash to come: rewrite the hashed columns then, or never.';
REVOKE ALL ON optiqoflow.column_hash_key FROM PUBLIC;
INSERT INTO optiqoflow.column_hash_key (ikey, okey)
SELECT (SELECT decode(string_agg(lpad(to_hex(get_byte(k.key, i) # 54), 2, '0'), '' ORDER BY i), 'hex')
          FROM generate_series(0, 63) i),
       (SELECT decode(string_agg(lpad(to_hex(get_byte(k.key, i) # 92), 2, '0'), '' ORDER BY i), 'hex')
          FROM generate_series(0, 63) i)
  FROM (SELECT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                              || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex') AS key) k
ON CONFLICT (one) DO NOTHING;
