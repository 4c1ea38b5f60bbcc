-- What every PBX's fact function shares: reading time stamps and required fields.
--
-- Rules:
-- - A PBX time stamp may be unix seconds (number or text), milliseconds, or ISO text; one
--   that cannot be read falls back to when the frame arrived, never fails the frame.
-- - A field a fact needs and the frame lacks fails that frame with a message naming the
--   field by its path in the frame; the failure is recorded beside the raw event.
-- - An event that carries no call fact, or that pgcti does not know, is 'ignored' with a
--   note saying which: visible in cti.event_outcome, and harmless.

-- A PBX time stamp (unix seconds, as number or string, or ISO text) or p_default when absent or unreadable.
CREATE OR REPLACE FUNCTION cti.pbx_time(p_value jsonb, p_default timestamptz) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) NOT IN ('number', 'string') THEN
        RETURN p_default;
    END IF;
    IF (p_value #>> '{}') ~ '^\d{9,10}(\.\d+)?$' THEN
        RETURN to_timestamp((p_value #>> '{}')::numeric);
    END IF;
    IF (p_value #>> '{}') ~ '^\d{13}$' THEN  -- milliseconds
        RETURN to_timestamp((p_value #>> '{}')::numeric / 1000);
    END IF;
    RETURN (p_value #>> '{}')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN p_default;
END
$$;

-- A text field the fact needs; a frame without it fails with a message naming the field by
-- its path in the frame: data.X in API 3.0, args[0].X in API 2.0.
CREATE OR REPLACE FUNCTION cti.required_field(p_data jsonb, p_field text, p_event text, p_path text DEFAULT 'data') RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text := p_data ->> p_field;
BEGIN
    IF v_value IS NULL OR v_value = '' THEN
        RAISE EXCEPTION '% frame lacks field "%.%"', p_event, p_path, p_field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_value;
END
$$;

-- The 'ignored' fact for an event the caller does not turn into facts: one of p_no_fact
-- (known, carries no call fact) or any other not in p_handled (unknown). NULL for an
-- event in p_handled.
CREATE OR REPLACE FUNCTION cti.ignored_event(p_event text, p_no_fact text[], p_handled text[]) RETURNS cti.fact
LANGUAGE sql STABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN CASE WHEN p_event <> ALL (p_handled) THEN
            jsonb_populate_record(NULL::cti.fact, jsonb_build_object('kind', 'ignored', 'note',
                CASE WHEN p_event = ANY (p_no_fact) THEN format('event "%s" carries no call fact', p_event)
                     ELSE format('unknown event type "%s"', left(p_event, 100)) END))
       END;

-- The frame's object of event data at p_path; a frame without one fails, naming the path.
CREATE OR REPLACE FUNCTION cti.required_object(p_data jsonb, p_event text, p_path text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_data IS NULL OR jsonb_typeof(p_data) <> 'object' THEN
        RAISE EXCEPTION '% frame lacks field "%"', p_event, p_path USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_data;
END
$$;

-- One leg's fact from an onlinePBX channel event (channel_create, _answer, _hold, _unhold,
-- _destroy): API 3.0 and 2.0 send the same FreeSWITCH channel data, but for the fields that
-- carry the answer and end times (p_answered_field, p_ended_field; NULL: when it arrived).
CREATE OR REPLACE FUNCTION cti.onlinepbx_leg_fact(
    p_event text, p_data jsonb, p_received timestamptz, p_answered_field text, p_ended_field text
) RETURNS cti.fact
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fact cti.fact;
BEGIN
    v_fact.at := p_received;
    CASE p_event
        WHEN 'channel_create' THEN
            v_fact.kind := 'leg_created';
            v_fact.at := cti.pbx_time(p_data -> 'created_stamp', p_received);
            v_fact.caller_raw := p_data ->> 'caller_number';
            v_fact.destination_raw := p_data ->> 'destination_number';
        WHEN 'channel_answer' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(p_data -> p_answered_field, p_received);
        WHEN 'channel_hold' THEN
            v_fact.kind := 'leg_hold';
        WHEN 'channel_unhold' THEN
            v_fact.kind := 'leg_unhold';
        WHEN 'channel_destroy' THEN
            v_fact.kind := 'leg_ended';
            v_fact.at := cti.pbx_time(p_data -> p_ended_field, p_received);
            v_fact.cause := p_data ->> 'hangup_cause';
    END CASE;
    RETURN v_fact;
END
$$;
