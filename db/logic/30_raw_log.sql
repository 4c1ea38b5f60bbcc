-- The raw log: every PBX frame is stored, whatever it holds.
--
-- Rules:
-- - A frame is stored even when it is not JSON, not an object, empty or over
--   cti.config.max_frame_bytes: then its body is kept as text with the reason in parse_error.
-- - A parsed frame keeps only its jsonb; its dedup key is the SHA-256 of jsonb's canonical
--   text, so a frame sent twice (a replay after a reconnect, two ingesters) is stored once.
-- - An Asterisk AMI block (source 'asterisk') is `Key: Value` lines, not JSON: it keeps its
--   body verbatim and gets a parsed form beside it, {"Event": ..., "fields": [[key, value],
--   ...]} in order with every repeated key (ChanVariable). AMI events carry no id and the
--   same block can honestly come twice, so its key also takes the time it was received:
--   the ingester's own resend (same time) is stored once, two real events twice. A block
--   with the PBX's Timestamp (manager.conf timestampevents = yes) is keyed by itself: a
--   replay of it at any time is stored once.
-- Why: the raw log is the only input of everything derived (`pgcti rebuild` replays it), and
-- a frame the ingester could not make sense of is evidence, not garbage.

-- An AMI block's lines in order, every repeated key kept; Event apart for lookups.
CREATE OR REPLACE FUNCTION cti.ami_block(p_body text) RETURNS jsonb
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'Event', (SELECT trim(substr(l, strpos(l, ':') + 1)) FROM regexp_split_to_table(p_body, E'\r?\n') l
                   WHERE lower(split_part(l, ':', 1)) = 'event' LIMIT 1),
        'fields', coalesce(jsonb_agg(jsonb_build_array(split_part(l.line, ':', 1),
                                                       ltrim(substr(l.line, strpos(l.line, ':') + 1)))
                                     ORDER BY l.n) FILTER (WHERE strpos(l.line, ':') > 0), '[]'))
      FROM regexp_split_to_table(p_body, E'\r?\n') WITH ORDINALITY AS l(line, n)
$$;

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
        ELSIF NEW.source = 'asterisk' THEN
            NEW.frame := cti.ami_block(NEW.body);
            IF NEW.frame ->> 'Event' IS NULL THEN
                NEW.parse_error := 'not an AMI event block (no Event: line)';
            END IF;
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
    NEW.dedup_key := encode(sha256(convert_to(
        CASE WHEN NEW.source <> 'asterisk' THEN coalesce(NEW.frame::text, NEW.body, '')
             WHEN NEW.body ~ '(^|\n)Timestamp: *[0-9]' THEN NEW.body  -- the PBX's own time tells repeats apart
             ELSE coalesce(NEW.body, '') || E'\n' || NEW.received_at::text END, 'UTF8')), 'hex');
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__parse();
