-- Facts from onlinePBX API 2.0 (socket.io 0.9) events, and how they are pieced into calls.
--
-- Rules:
-- - 2.0 events carry no call id: facts come without a call key, and correlate_onlinepbx2()
--   finds the call from the leg, a known bridge, or an open call from the same caller;
--   apply_onlinepbx2_fact() stores the fact on it (the 2.0 path of 65_processing.sql).
-- - A bridge that joins two calls merges them (an attended transfer).
-- - Unknown event types are 'ignored' with a note.
-- Why apart from 3.0: correlation needs what is already stored, so 2.0 frames go frame by
-- frame (65_processing.sql), while 3.0 batches go in rounds.

-- onlinePBX API 2.0: {"name": event, "args": [data]}. No call id: facts carry call_key NULL and
-- cti.correlate_onlinepbx2() finds the call through legs, bridges and numbers.
CREATE OR REPLACE FUNCTION cti.facts_from_onlinepbx2(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'name';
    v_data jsonb := p_frame -> 'args' -> 0;
    v_fact cti.fact;
    v_leg text;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "name"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fact := cti.ignored_event(
        v_event,
        ARRAY['callback', 'registration', 'channel_application', 'messages', 'api'],
        ARRAY['channel_create', 'channel_answer', 'channel_bridge', 'channel_hold', 'channel_unhold',
              'channel_destroy', 'blf']);
    IF v_fact.kind = 'ignored' THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_data := cti.required_object(v_data, v_event, 'args[0]');

    v_fact.at := p_received;
    IF v_event = 'channel_bridge' THEN
        v_fact.kind := 'bridged';
        v_fact.leg := cti.required_field(v_data, 'aleg_uuid', v_event, 'args[0]');
        v_fact.other_leg := cti.required_field(v_data, 'bleg_uuid', v_event, 'args[0]');
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_leg := cti.required_field(v_data, 'uuid', v_event, 'args[0]');
    IF v_event = 'blf' THEN
        -- "answered" is who picked up (uid = the extension); ringing and hangup repeat the leg events.
        IF v_data ->> 'status' = 'answered' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(v_data -> 'timestamp', p_received);
        ELSE
            v_fact.kind := 'ignored';
            v_fact.note := format('blf "%s" repeats what the channel events say', left(v_data ->> 'status', 40));
        END IF;
    ELSE
        -- 2.0 has no end time stamp: a leg ends when its destroy event arrives.
        v_fact := cti.onlinepbx_leg_fact(v_event, v_data, p_received, 'timestamp', NULL);
    END IF;
    v_fact.leg := v_leg;
    RETURN NEXT v_fact;
END
$$;

COMMENT ON FUNCTION cti.facts_from_onlinepbx2(jsonb, timestamptz) IS 'onlinePBX WebSocket API 2.0 event -> call facts (without call ids); raises naming a missing field';

-- The call a 2.0 fact belongs to, creating it when the fact starts one. Evidence, in order:
-- the leg or a bridge we already know; for a new leg ringing an extension (or an outbound
-- call's gateway leg) the open call with a leg from the same caller; otherwise a new call
-- keyed by this leg. A bridge between two calls merges them (an attended transfer joins the
-- colleague's consultation into the customer's call).
CREATE OR REPLACE FUNCTION cti.correlate_onlinepbx2(p_source text, p_fact cti.fact) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call bigint;
    v_other bigint;
    v_caller text := cti.normalize_phone(p_fact.caller_raw);
    v_destination text := cti.normalize_phone(p_fact.destination_raw);
BEGIN
    SELECT call_id INTO v_call FROM cti.call_leg WHERE source = p_source AND leg_uuid = p_fact.leg;
    IF v_call IS NULL THEN  -- each side of a bridge through its own index (0017)
        SELECT b.call_id INTO v_call
          FROM (SELECT x.call_id FROM cti.call_bridge x WHERE x.leg_a = p_fact.leg
                UNION ALL
                SELECT x.call_id FROM cti.call_bridge x WHERE x.leg_b = p_fact.leg) b
         CROSS JOIN LATERAL (SELECT FROM cti.call c WHERE c.id = b.call_id AND c.source = p_source OFFSET 0) c
         LIMIT 1;
    END IF;

    IF p_fact.kind = 'bridged' THEN
        SELECT call_id INTO v_other FROM cti.call_leg WHERE source = p_source AND leg_uuid = p_fact.other_leg;
        IF v_call IS NOT NULL AND v_other IS NOT NULL AND v_call <> v_other THEN
            RETURN cti.merge_calls(least(v_call, v_other), greatest(v_call, v_other));
        END IF;
        v_call := coalesce(v_call, v_other);
    END IF;

    -- A new leg, or one only seen through an early answer or hangup (a call of its own so far).
    IF p_fact.kind = 'leg_created' AND (v_call IS NULL OR NOT EXISTS (
            SELECT FROM cti.call_leg WHERE call_id = v_call AND leg_uuid <> p_fact.leg))
       AND (cti.is_extension(v_destination) OR (cti.is_extension(v_caller) AND v_destination IS NOT NULL)) THEN
        -- The caller's open legs of the last minutes (an index of their own, 0018), not every
        -- leg; coalesce: an anonymous caller matches another anonymous one.
        SELECT l.call_id INTO v_other FROM cti.call_leg l JOIN cti.call c ON c.id = l.call_id
         WHERE l.source = p_source AND l.leg_uuid <> p_fact.leg AND l.ended_at IS NULL AND c.ended_at IS NULL
           AND coalesce(l.caller, '') = coalesce(v_caller, '')
           AND (cti.is_extension(v_destination) OR l.destination = v_destination)
           AND l.created_at BETWEEN p_fact.at - interval '10 minutes' AND p_fact.at + interval '1 minute'
         ORDER BY l.created_at DESC, l.call_id DESC LIMIT 1;
        IF v_other IS NOT NULL THEN
            RETURN CASE WHEN v_call IS NULL THEN v_other ELSE cti.merge_calls(v_other, v_call) END;
        END IF;
    END IF;

    IF v_call IS NULL THEN
        INSERT INTO cti.call AS c (source, pbx_call_id) VALUES (p_source, coalesce(p_fact.leg, p_fact.other_leg))
        ON CONFLICT (source, pbx_call_id) DO UPDATE SET source = c.source
        RETURNING c.id INTO v_call;
    END IF;
    RETURN v_call;
END
$$;

-- Store one 2.0 fact; returns its call. The 2.0 path of processing (65_processing.sql)
-- calls this, so that cti.apply_fact stays the same for every PBX that names its calls.
CREATE OR REPLACE FUNCTION cti.apply_onlinepbx2_fact(p_source text, p_fact cti.fact) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint := cti.correlate_onlinepbx2(p_source, p_fact);
BEGIN
    PERFORM cti.apply_facts(p_source, ARRAY[ROW(NULL, NULL, p_fact, v_call_id, NULL)::cti.frame_fact]);
    RETURN v_call_id;
END
$$;
