-- The raw log: every PBX frame, stored even when it is not JSON or too big, deduplicated by key.
-- depends: 0002_config_and_phone

SET LOCAL ROLE cti_owner;

-- Append-only. The ingester writes (source, received_at, body); the BEFORE trigger
-- parses the body and computes the dedup key; outcomes go to cti.event_outcome.
CREATE TABLE cti.raw_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL CHECK (source ~ '^[a-z0-9_]{1,32}$'),
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    body text,                -- the frame as received; kept only when it could not be parsed
    frame jsonb,              -- the parsed frame
    dedup_key text NOT NULL,
    parse_error text
);
COMMENT ON TABLE cti.raw_event IS 'Every PBX frame as received (append-only); derived state is a function of this log';
CREATE UNIQUE INDEX raw_event_dedup ON cti.raw_event (source, dedup_key);

-- What processing made of each raw event; written by the processing trigger and by rebuild.
CREATE TABLE cti.event_outcome (
    raw_event_id bigint PRIMARY KEY REFERENCES cti.raw_event (id),
    status text NOT NULL CHECK (status IN ('processed', 'ignored', 'failed')),
    detail text,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE cti.event_outcome IS 'Processing result beside each raw event: processed, ignored (with why) or failed (with the error)';
CREATE INDEX event_outcome_not_processed ON cti.event_outcome (status) WHERE status <> 'processed';

-- Parse the body and key the frame. Runs before the unique check, so it must never raise:
-- a frame that cannot be parsed is still stored, with the reason.
CREATE FUNCTION cti.tg_raw_event__parse() RETURNS trigger
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

CREATE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__parse();
