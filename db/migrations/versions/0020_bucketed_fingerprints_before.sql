-- fingerprint_query gains p_digits (DEFAULT 0: the same query as before for two
-- arguments); the two-argument function goes, so a call with two arguments is not
-- ambiguous.
DROP FUNCTION IF EXISTS optiqoflow.fingerprint_query(text, text);
