-- Undo 0016: the three-argument required_field (always data.X) and 0008's 2.0 normaliser.
SET LOCAL ROLE cti_owner;

-- onlinePBX API 2.0 (as in 0008): {"name": event, "args": [data]}. No call id: facts carry call_key NULL and
-- cti.correlate_onlinepbx2() finds the call through legs, bridges and numbers.
CREATE OR REPLACE FUNCTION cti.normalize_onlinepbx2(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
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
DROP FUNCTION cti.required_field(jsonb, text, text, text);

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

