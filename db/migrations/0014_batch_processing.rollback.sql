-- Undo 0014: back to one subtransaction per frame, from a row trigger.
SET LOCAL ROLE cti_owner;

DROP TRIGGER _500_process ON cti.raw_event;

CREATE OR REPLACE FUNCTION cti.tg_raw_event__process() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.process_and_record(NEW, true);
    RETURN NULL;
END
$$;

CREATE TRIGGER _500_process AFTER INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__process();
