-- The reference CRM's own logic (schema crm: demo, tests, new installs).
--
-- Rule: a client's number is stored as typed (raw) and as lookups compare it (e164), the
-- latter kept by this trigger with cti.normalize_phone(), so crm_lookup() is an index scan.
-- A real CRM keeps its own tables; only its adapters (20_crm_adapters.sql) change.

CREATE OR REPLACE FUNCTION crm.tg_client_phone__normalize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.e164 := cti.normalize_phone(NEW.raw);
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER _100_normalize BEFORE INSERT OR UPDATE OF raw ON crm.client_phone
    FOR EACH ROW EXECUTE FUNCTION crm.tg_client_phone__normalize();
