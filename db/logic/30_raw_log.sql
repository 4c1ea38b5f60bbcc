-- [from 0003_raw_event.sql]
-- Parse the body and key the frame. Runs before the unique check, so it must never raise:
-- a frame that cannot be parsed is still stored, with the reason.
CREATE OR REPLACE FUNCTION cti.tg_raw_event__parse() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER  -- reads cti.config, which the ingester role cannot
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_limit int;
    v_bytes int;
BEGIN
    IF NEW.frame IS NULL THEN
        SELECT max_frame_bytes INTO v_limit FROM cti.config;
        v_bytes := octet_length(NEW.body);
        IF NEW.body IS NULL THEN
            NEW.parse_error := 'empty frame';
        ELSIF v_bytes > v_limit THEN
            NEW.parse_error := format('frame is %s bytes, over the %s-byte limit (cti.config.max_frame_bytes)', v_bytes, v_limit);
        ELSE
            BEGIN
                NEW.frame := NEW.body::jsonb;
                NEW.body := NULL;
            EXCEPTION WHEN others THEN
                NEW.parse_error := 'not valid JSON: ' || SQLERRM;
            END;
        END IF;
        IF NEW.frame IS NOT NULL AND jsonb_typeof(NEW.frame) <> 'object' THEN
            NEW.parse_error := 'frame is JSON but not an object: ' || jsonb_typeof(NEW.frame);
        END IF;
    END IF;
    -- jsonb's text form is canonical (key order, spacing), so a replayed frame gets the same key.
    NEW.dedup_key := encode(sha256(convert_to(coalesce(NEW.frame::text, NEW.body, ''), 'UTF8')), 'hex');
    RETURN NEW;
END
$$;

-- [from 0003_raw_event.sql]
CREATE OR REPLACE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__parse();
