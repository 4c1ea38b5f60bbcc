SET LOCAL ROLE cti_owner;

CREATE OR REPLACE FUNCTION cti.is_extension(p_normalized text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p_normalized IS NOT NULL AND left(p_normalized, 1) <> '+' $$;
