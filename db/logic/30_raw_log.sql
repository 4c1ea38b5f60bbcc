-- The raw log: every PBX frame is stored, whatever it holds.
--
-- Rules:
-- - A frame is stored even when it is not JSON, not an object, empty or over
--   cti.config.max_frame_bytes: then its body is kept as text with the reason in parse_error.
-- - A parsed frame keeps only its jsonb; its dedup key is the SHA-256 of jsonb's canonical
--   text, so a frame sent twice (a replay after a reconnect, two ingesters) is stored once.
-- Why: the raw log is the only input of everything derived (`pgcti rebuild` replays it), and
-- a frame the ingester could not make sense of is evidence, not garbage.

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

CREATE OR REPLACE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__parse();
