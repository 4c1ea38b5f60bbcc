-- Facts from onlinePBX WebSocket API 3.0 frames.
--
-- Rules:
-- - A frame becomes call facts (cti.fact: leg_created, leg_answered, bridged, leg_hold,
--   leg_unhold, leg_ended, call_ended), keyed by the PBX's call_uuid.
-- - An unknown event type is 'ignored' with a note saying which, so it is visible and harmless.
-- - Numbers are passed on raw; normalising them is the call logic's job (50_call_facts.sql).
-- Why: facts are the contract between a PBX and the call logic; a new PBX adds a fact
-- function beside this one and nothing else changes.

-- onlinePBX API 3.0: {"event": name, "data": {...}}, one event per call leg, legs grouped by data.call_uuid.
CREATE OR REPLACE FUNCTION cti.facts_from_onlinepbx3(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'event';
    v_data jsonb := p_frame -> 'data';
    v_fact cti.fact;
    v_uuids jsonb;
    v_leg text;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "event"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fact := cti.ignored_event(
        v_event,
        ARRAY['subscribed', 'unsubscribed', 'error_subscribe', 'transferred', 'bridged',
              'user_blf', 'user_registration', 'gateway'],
        ARRAY['channel_create', 'channel_answer', 'channel_bridge', 'channel_unbridge',
              'channel_hold', 'channel_unhold', 'channel_destroy', 'call_end']);
    IF v_fact.kind = 'ignored' THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_data := cti.required_object(v_data, v_event, 'data');

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

    v_leg := cti.required_field(v_data, 'uuid', v_event);
    v_fact := cti.onlinepbx_leg_fact(v_event, v_data, p_received, 'answered_stamp', 'end_stamp');
    v_fact.call_key := v_data ->> 'call_uuid';
    v_fact.leg := v_leg;
    RETURN NEXT v_fact;
END
$$;

COMMENT ON FUNCTION cti.facts_from_onlinepbx3(jsonb, timestamptz) IS 'onlinePBX WebSocket API 3.0 frame -> call facts; raises naming a missing field';
