-- Call facts, and the normalisers that turn onlinePBX WebSocket API 3.0 and 2.0 frames into them.
-- depends: 0007_outbox_and_client_api

SET LOCAL ROLE cti_owner;

-- What a PBX frame says about a call, independent of the PBX: the contract between
-- per-source normalisers and the call logic. `kind` is one of leg_created, leg_answered,
-- bridged, leg_hold, leg_unhold, leg_ended, call_ended, ignored (with `note` saying why).
CREATE TYPE cti.fact AS (
    kind text,
    call_key text,
    leg text,
    other_leg text,
    at timestamptz,
    caller_raw text,
    destination_raw text,
    cause text,
    note text
);

-- A PBX time stamp (unix seconds, as number or string, or ISO text) or p_default when absent or unreadable.
CREATE FUNCTION cti.pbx_time(p_value jsonb, p_default timestamptz) RETURNS timestamptz
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

-- A text field the fact needs; a frame without it fails with a message naming the field.
CREATE FUNCTION cti.required_field(p_data jsonb, p_field text, p_event text) RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text := p_data ->> p_field;
BEGIN
    IF v_value IS NULL OR v_value = '' THEN
        RAISE EXCEPTION '% frame lacks field "data.%"', p_event, p_field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_value;
END
$$;

-- onlinePBX API 3.0: {"event": name, "data": {...}}, one event per call leg, legs grouped by data.call_uuid.
CREATE FUNCTION cti.normalize_onlinepbx3(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'event';
    v_data jsonb := p_frame -> 'data';
    v_fact cti.fact;
    v_uuids jsonb;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "event"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_event IN ('subscribed', 'unsubscribed', 'error_subscribe', 'transferred', 'bridged',
                   'user_blf', 'user_registration', 'gateway') THEN
        v_fact.kind := 'ignored';
        v_fact.note := format('event "%s" carries no call fact', v_event);
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF v_event NOT IN ('channel_create', 'channel_answer', 'channel_bridge', 'channel_unbridge',
                       'channel_hold', 'channel_unhold', 'channel_destroy', 'call_end') THEN
        v_fact.kind := 'ignored';
        v_fact.note := format('unknown event type "%s"', left(v_event, 100));
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF v_data IS NULL OR jsonb_typeof(v_data) <> 'object' THEN
        RAISE EXCEPTION '% frame lacks field "data"', v_event USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_fact.at := p_received;
    IF v_event = 'call_end' THEN
        v_fact.kind := 'call_ended';
        v_fact.call_key := coalesce(nullif(v_data ->> 'call_uuid', ''), cti.required_field(v_data, 'uuid', v_event));
        v_fact.at := cti.pbx_time(v_data -> 'end_stamp', p_received);
        v_fact.cause := v_data ->> 'hangup_cause';
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_fact.call_key := cti.required_field(v_data, 'call_uuid', v_event);
    IF v_event IN ('channel_bridge', 'channel_unbridge') THEN
        v_uuids := v_data -> 'uuids';
        IF v_uuids IS NULL OR jsonb_typeof(v_uuids) <> 'array' OR jsonb_array_length(v_uuids) < 2 THEN
            RAISE EXCEPTION '% frame lacks field "data.uuids" (an array of two leg ids)', v_event
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_event = 'channel_unbridge' THEN
            v_fact.kind := 'ignored';
            v_fact.note := 'channel_unbridge: who holds the call is decided by the next bridge or the hangup';
            RETURN NEXT v_fact;
            RETURN;
        END IF;
        v_fact.kind := 'bridged';
        v_fact.leg := v_uuids ->> 0;
        v_fact.other_leg := v_uuids ->> 1;
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_fact.leg := cti.required_field(v_data, 'uuid', v_event);
    CASE v_event
        WHEN 'channel_create' THEN
            v_fact.kind := 'leg_created';
            v_fact.at := cti.pbx_time(v_data -> 'created_stamp', p_received);
            v_fact.caller_raw := v_data ->> 'caller_number';
            v_fact.destination_raw := v_data ->> 'destination_number';
        WHEN 'channel_answer' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(v_data -> 'answered_stamp', p_received);
        WHEN 'channel_hold' THEN
            v_fact.kind := 'leg_hold';
        WHEN 'channel_unhold' THEN
            v_fact.kind := 'leg_unhold';
        WHEN 'channel_destroy' THEN
            v_fact.kind := 'leg_ended';
            v_fact.at := cti.pbx_time(v_data -> 'end_stamp', p_received);
            v_fact.cause := v_data ->> 'hangup_cause';
    END CASE;
    RETURN NEXT v_fact;
END
$$;
COMMENT ON FUNCTION cti.normalize_onlinepbx3(jsonb, timestamptz) IS 'onlinePBX WebSocket API 3.0 frame -> call facts; raises naming a missing field';

-- onlinePBX API 2.0: {"name": event, "args": [data]}. No call id: facts carry call_key NULL and
-- cti.correlate_onlinepbx2() finds the call through legs, bridges and numbers.
CREATE FUNCTION cti.normalize_onlinepbx2(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'name';
    v_data jsonb := p_frame -> 'args' -> 0;
    v_fact cti.fact;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "name"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_event IN ('callback', 'registration', 'channel_application', 'messages', 'api') THEN
        v_fact.kind := 'ignored';
        v_fact.note := format('event "%s" carries no call fact', v_event);
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF v_event NOT IN ('channel_create', 'channel_answer', 'channel_bridge', 'channel_hold', 'channel_unhold',
                       'channel_destroy', 'blf') THEN
        v_fact.kind := 'ignored';
        v_fact.note := format('unknown event type "%s"', left(v_event, 100));
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF v_data IS NULL OR jsonb_typeof(v_data) <> 'object' THEN
        RAISE EXCEPTION '% frame lacks field "args[0]"', v_event USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_fact.at := p_received;
    IF v_event = 'channel_bridge' THEN
        v_fact.kind := 'bridged';
        v_fact.leg := cti.required_field(v_data, 'aleg_uuid', v_event);
        v_fact.other_leg := cti.required_field(v_data, 'bleg_uuid', v_event);
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_fact.leg := cti.required_field(v_data, 'uuid', v_event);
    CASE v_event
        WHEN 'channel_create' THEN
            v_fact.kind := 'leg_created';
            v_fact.at := cti.pbx_time(v_data -> 'created_stamp', p_received);
            v_fact.caller_raw := v_data ->> 'caller_number';
            v_fact.destination_raw := v_data ->> 'destination_number';
        WHEN 'channel_answer' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(v_data -> 'timestamp', p_received);
        WHEN 'blf' THEN
            -- "answered" is who picked up (uid = the extension); ringing and hangup repeat the leg events.
            IF v_data ->> 'status' = 'answered' THEN
                v_fact.kind := 'leg_answered';
                v_fact.at := cti.pbx_time(v_data -> 'timestamp', p_received);
            ELSE
                v_fact.kind := 'ignored';
                v_fact.note := format('blf "%s" repeats what the channel events say', left(v_data ->> 'status', 40));
            END IF;
        WHEN 'channel_hold' THEN
            v_fact.kind := 'leg_hold';
        WHEN 'channel_unhold' THEN
            v_fact.kind := 'leg_unhold';
        WHEN 'channel_destroy' THEN
            v_fact.kind := 'leg_ended';
            v_fact.cause := v_data ->> 'hangup_cause';
    END CASE;
    RETURN NEXT v_fact;
END
$$;
COMMENT ON FUNCTION cti.normalize_onlinepbx2(jsonb, timestamptz) IS 'onlinePBX WebSocket API 2.0 event -> call facts (without call ids); raises naming a missing field';
