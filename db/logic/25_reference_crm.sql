-- [from 0004_crm_reference.sql]
CREATE OR REPLACE FUNCTION crm.tg_client_phone__normalize() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    NEW.e164 := cti.normalize_phone(NEW.raw);
    RETURN NEW;
END
$$;

-- [from 0004_crm_reference.sql]
CREATE OR REPLACE TRIGGER _100_normalize BEFORE INSERT OR UPDATE OF raw ON crm.client_phone
    FOR EACH ROW EXECUTE FUNCTION crm.tg_client_phone__normalize();
