-- cti.is_extension() as a SQL-standard body, which PostgreSQL inlines into its callers.
-- depends: 0015_bridge_member_index

-- Why: as a LANGUAGE sql function with SET search_path it was never inlined, and before
-- PostgreSQL 18 it was planned again on every call: 18 us a call on PostgreSQL 15, 1.7
-- calls a frame (docs/performance.md, "Functions planned on every call"). Same result for
-- every input, so nothing stored is recomputed. A SQL-standard body resolves its names
-- when it is created, so it needs no SET search_path.

SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.is_extension(p_normalized text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN p_normalized IS NOT NULL AND left(p_normalized, 1) <> '+';
