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
--   replay of it at any time is stored once. A block without an Event line is an error,
--   but for the answer to an Originate pgcti sent (click-to-call; ActionID pgcti-dial-...).
-- Why: the raw log is the only input of everything derived (`pgcti rebuild` replays it), and
-- a frame the ingester could not make sense of is evidence, not garbage.

-- An AMI block's lines in order, every repeated key kept; Event apart for lookups.
-- One pass over the lines, split without a regular expression, the pairs built as a text
-- array and turned into JSON once: 0.6 of the time of a split for Event and another for the
-- fields with a JSON array built per line (lab note 2026-11-27-a-cheaper-raw-log), the same result.
CREATE OR REPLACE FUNCTION cti.ami_block(p_body text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'Event', (array_agg(trim(substr(l.line, strpos(l.line, ':') + 1)) ORDER BY l.n)
                      FILTER (WHERE lower(split_part(l.line, ':', 1)) = 'event'))[1],
        'fields', coalesce(to_jsonb(array_agg(ARRAY[split_part(l.line, ':', 1),
                                                    ltrim(substr(l.line, strpos(l.line, ':') + 1))] ORDER BY l.n)
                                        FILTER (WHERE strpos(l.line, ':') > 0)), '[]'))
      -- lines end with CRLF or LF
      FROM unnest(string_to_array(replace(p_body, E'\r\n', E'\n'), E'\n')) WITH ORDINALITY AS l(line, n));
END
$$;

-- Why parse in the INSERT, not in a row trigger: the trigger was a PL/pgSQL call per frame
-- with a subtransaction for the cast; set-based, in the INSERT's own query, parsing and
-- keying cost about 13 us per frame, and the raw log takes 1.13x (JSON) and 1.21x (AMI)
-- the frames per second it did (lab note 2026-11-27-a-cheaper-raw-log).

-- NULL when the text is valid JSON, else why not. PostgreSQL 16 and later tell without an
-- error (pg_input_is_valid); 15 needs the cast and a subtransaction, kept apart below so
-- that the newer servers never open one.
CREATE OR REPLACE FUNCTION cti.json_error(p_body text) RETURNS text
LANGUAGE plpgsql STABLE  -- reads the server's version
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF current_setting('server_version_num')::int < 160000 THEN
        RETURN cti.json_error_by_cast(p_body);
    ELSIF pg_input_is_valid(p_body, 'jsonb') THEN
        RETURN NULL;
    END IF;
    RETURN (pg_input_error_info(p_body, 'jsonb')).message;
END
$$;

CREATE OR REPLACE FUNCTION cti.json_error_by_cast(p_body text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM p_body::jsonb;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN SQLERRM;
END
$$;

-- Parse and key a batch of frames, in order (n). The one place that says how a frame is
-- stored: the ingester's cti.ingest_frames_v1() and the row trigger below both come here.
CREATE OR REPLACE FUNCTION cti.parse_frames(p_sources text[], p_received timestamptz[], p_bodies text[])
RETURNS TABLE (n bigint, source text, received_at timestamptz, body text, frame jsonb, dedup_key bytea, parse_error text)
LANGUAGE plpgsql STABLE  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- arrays as parameters (65_processing.sql)
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH checked AS (
        SELECT i.n, i.source, coalesce(i.received_at, clock_timestamp()) AS received_at, i.body,
               CASE WHEN i.body IS NULL THEN 'empty frame'
                    WHEN octet_length(i.body) > g.max_frame_bytes
                    THEN format('frame is %s bytes, over the %s-byte limit (cti.config.max_frame_bytes)',
                                octet_length(i.body), g.max_frame_bytes)
                    WHEN i.source <> 'asterisk' THEN 'not valid JSON: ' || cti.json_error(i.body)
               END AS error
          FROM unnest(p_sources, p_received, p_bodies) WITH ORDINALITY AS i(source, received_at, body, n)
         CROSS JOIN cti.config g
    ), parsed AS MATERIALIZED (  -- so that each frame is parsed once, however often it is used below
        SELECT c.*, CASE WHEN c.error IS NOT NULL THEN NULL
                         WHEN c.source = 'asterisk' THEN cti.ami_block(c.body)
                         ELSE c.body::jsonb END AS frame
          FROM checked c
    )
    SELECT p.n, p.source, p.received_at,
           CASE WHEN p.frame IS NULL OR p.source = 'asterisk' THEN p.body END,  -- kept only when not parsed, or AMI
           p.frame,
           -- jsonb's text form is canonical (key order, spacing), so a replayed frame gets the same key.
           sha256(convert_to(
               CASE WHEN p.source <> 'asterisk' THEN coalesce(p.frame::text, p.body, '')
                    WHEN p.body ~ '(^|\n)Timestamp: *[0-9]' THEN p.body  -- the PBX's own time tells repeats apart
                    ELSE coalesce(p.body, '') || E'\n' || p.received_at::text END, 'UTF8')),
           coalesce(p.error,
                    CASE WHEN p.source = 'asterisk' AND p.frame ->> 'Event' IS NULL
                              AND p.body !~ '(^|\n)ActionID: *pgcti-dial-'  -- the answer to pgcti's Originate
                         THEN 'not an AMI event block (no Event: line)'
                         WHEN jsonb_typeof(p.frame) <> 'object'
                         THEN 'frame is JSON but not an object: ' || jsonb_typeof(p.frame) END)
      FROM parsed p;
END
$$;

-- The ingester's one statement: store a batch of frames, parsed and keyed, in order; a
-- frame already stored (same key) is skipped. Returns how many were new. Runs as the owner,
-- so the ingester needs no right on the table's other columns; the processing trigger
-- still checks that its login is registered in this database.
CREATE OR REPLACE FUNCTION cti.ingest_frames_v1(p_sources text[], p_received timestamptz[], p_bodies text[])
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- arrays as parameters: planned once, not per batch (65_processing.sql)
AS $$
DECLARE
    v_stored bigint;
BEGIN
    INSERT INTO cti.raw_event (source, received_at, body, frame, dedup_key, parse_error)
    SELECT p.source, p.received_at, p.body, p.frame, p.dedup_key, p.parse_error
      FROM cti.parse_frames(p_sources, p_received, p_bodies) p
     ORDER BY p.n
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_stored = ROW_COUNT;
    RETURN v_stored;
END
$$;

COMMENT ON FUNCTION cti.ingest_frames_v1(text[], timestamptz[], text[]) IS 'Store a batch of PBX frames (source, received time, body) in order; duplicates are skipped; returns how many were new';

-- Anyone else's INSERT (a DBA's, an ingester of an earlier release: source, received_at,
-- body) is parsed and keyed here, a row at a time, by the same rules. A frame given
-- already parsed is keyed by its own text.
CREATE OR REPLACE FUNCTION cti.tg_raw_event__parse() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER  -- reads cti.config, which the ingester role cannot
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    SELECT p.received_at, p.body, p.frame, p.dedup_key, p.parse_error
      INTO NEW.received_at, NEW.body, NEW.frame, NEW.dedup_key, NEW.parse_error
      FROM cti.parse_frames(ARRAY[NEW.source], ARRAY[NEW.received_at],
                            ARRAY[coalesce(NEW.body, NEW.frame::text)]) p;
    RETURN NEW;
END
$$;

-- Runs before the unique check; only for rows that come unkeyed (not the ingester's).
CREATE OR REPLACE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW WHEN (NEW.dedup_key IS NULL) EXECUTE FUNCTION cti.tg_raw_event__parse();
