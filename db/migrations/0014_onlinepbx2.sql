-- onlinePBX WebSocket API 2.0 (socket.io 0.9): its normaliser, and call correlation for a PBX without call ids.
-- depends: 0013_grants

SET LOCAL ROLE cti_owner;

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

-- Fold call p_gone into p_keep: they turned out to be one call (a bridge joined them,
-- or a leg seen early turned out to ring for a customer's call).
CREATE FUNCTION cti.merge_calls(p_keep bigint, p_gone bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE cti.call_leg SET call_id = p_keep WHERE call_id = p_gone;
    INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
    SELECT p_keep, leg_a, leg_b, bridged_at FROM cti.call_bridge WHERE call_id = p_gone
    ON CONFLICT DO NOTHING;
    UPDATE cti.registered_number SET call_id = p_keep WHERE call_id = p_gone;
    -- What the gone call already told people stays told: no second ring, no second card.
    UPDATE cti.call k SET hold_count = k.hold_count + g.hold_count,
                          ring_notified = k.ring_notified OR g.ring_notified,
                          card_workstation_id = coalesce(k.card_workstation_id, g.card_workstation_id),
                          client_id = coalesce(k.client_id, g.client_id),
                          client_match = coalesce(k.client_match, g.client_match),
                          client_candidates = coalesce(k.client_candidates, g.client_candidates),
                          client_card = coalesce(k.client_card, g.client_card)
      FROM cti.call g WHERE k.id = p_keep AND g.id = p_gone;
    DELETE FROM cti.call WHERE id = p_gone;  -- legs' bridges and transfers of p_gone go with it
    RETURN p_keep;
END
$$;

-- The call a 2.0 fact belongs to, creating it when the fact starts one. Evidence, in order:
-- the leg or a bridge we already know; for a new leg ringing an extension (or an outbound
-- call's gateway leg) the open call with a leg from the same caller; otherwise a new call
-- keyed by this leg. A bridge between two calls merges them (an attended transfer joins the
-- colleague's consultation into the customer's call).
CREATE FUNCTION cti.correlate_onlinepbx2(p_source text, p_fact cti.fact) RETURNS bigint
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
    IF v_call IS NULL THEN
        SELECT b.call_id INTO v_call FROM cti.call_bridge b JOIN cti.call c ON c.id = b.call_id
         WHERE c.source = p_source AND p_fact.leg IN (b.leg_a, b.leg_b) LIMIT 1;
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
        SELECT l.call_id INTO v_other FROM cti.call_leg l JOIN cti.call c ON c.id = l.call_id
         WHERE l.source = p_source AND l.leg_uuid <> p_fact.leg AND l.ended_at IS NULL AND c.ended_at IS NULL
           AND l.caller IS NOT DISTINCT FROM v_caller
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

CREATE OR REPLACE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint;
BEGIN
    IF p_fact.call_key IS NULL THEN
        v_call_id := cti.correlate_onlinepbx2(p_source, p_fact);  -- a PBX without call ids
    ELSE
        -- The no-op update returns the id and locks the call row: frames of one call are applied one at a time.
        INSERT INTO cti.call AS c (source, pbx_call_id) VALUES (p_source, p_fact.call_key)
        ON CONFLICT (source, pbx_call_id) DO UPDATE SET source = c.source
        RETURNING c.id INTO v_call_id;
    END IF;

    CASE p_fact.kind
        WHEN 'leg_created' THEN
            INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, caller, caller_raw, destination,
                                           destination_raw, created_at)
            VALUES (p_source, p_fact.leg, v_call_id, cti.normalize_phone(p_fact.caller_raw), p_fact.caller_raw,
                    cti.normalize_phone(p_fact.destination_raw), p_fact.destination_raw, p_fact.at)
            ON CONFLICT (source, leg_uuid) DO UPDATE
               SET caller = EXCLUDED.caller, caller_raw = EXCLUDED.caller_raw,
                   destination = EXCLUDED.destination, destination_raw = EXCLUDED.destination_raw,
                   created_at = EXCLUDED.created_at;
        WHEN 'leg_answered' THEN
            INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, answered_at)
            VALUES (p_source, p_fact.leg, v_call_id, p_fact.at)
            ON CONFLICT (source, leg_uuid) DO UPDATE SET answered_at = coalesce(l.answered_at, EXCLUDED.answered_at);
        WHEN 'leg_ended' THEN
            INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, ended_at, hangup_cause)
            VALUES (p_source, p_fact.leg, v_call_id, p_fact.at, p_fact.cause)
            ON CONFLICT (source, leg_uuid) DO UPDATE
               SET ended_at = coalesce(l.ended_at, EXCLUDED.ended_at), hangup_cause = coalesce(l.hangup_cause, EXCLUDED.hangup_cause);
        WHEN 'leg_hold', 'leg_unhold' THEN
            INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, on_hold)
            VALUES (p_source, p_fact.leg, v_call_id, p_fact.kind = 'leg_hold')
            ON CONFLICT (source, leg_uuid) DO UPDATE SET on_hold = EXCLUDED.on_hold;
            IF p_fact.kind = 'leg_hold' THEN
                UPDATE cti.call SET hold_count = hold_count + 1 WHERE id = v_call_id;
            END IF;
        WHEN 'bridged' THEN
            INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
            VALUES (v_call_id, least(p_fact.leg, p_fact.other_leg), greatest(p_fact.leg, p_fact.other_leg), p_fact.at)
            ON CONFLICT DO NOTHING;
        WHEN 'call_ended' THEN
            -- The PBX's own end time wins over the time the last leg's hangup reached us.
            UPDATE cti.call SET pbx_ended = true, ended_at = p_fact.at,
                                hangup_cause = coalesce(hangup_cause, p_fact.cause)
             WHERE id = v_call_id;
        ELSE
            RAISE EXCEPTION 'unknown fact kind "%"', p_fact.kind;
    END CASE;
    RETURN v_call_id;
END
$$;

CREATE OR REPLACE FUNCTION cti.process_event(p_event cti.raw_event, p_live boolean, OUT status text, OUT detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fact cti.fact;
    v_calls bigint[] := '{}';
    v_call_id bigint;
    v_notes text[] := '{}';
BEGIN
    IF p_event.parse_error IS NOT NULL THEN
        status := 'failed';
        detail := p_event.parse_error;
        RETURN;
    END IF;
    IF p_event.source NOT IN ('onlinepbx3', 'onlinepbx2') THEN
        RAISE EXCEPTION 'no normaliser for source "%"', p_event.source USING HINT = 'known sources: onlinepbx3, onlinepbx2';
    END IF;
    FOR v_fact IN
        SELECT * FROM cti.normalize_onlinepbx3(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx3'
        UNION ALL
        SELECT * FROM cti.normalize_onlinepbx2(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx2'
    LOOP
        IF v_fact.kind = 'ignored' THEN
            v_notes := v_notes || v_fact.note;
        ELSE
            v_call_id := cti.apply_fact(p_event.source, v_fact);
            IF NOT v_call_id = ANY (v_calls) THEN
                v_calls := v_calls || v_call_id;
            END IF;
        END IF;
    END LOOP;
    FOREACH v_call_id IN ARRAY v_calls LOOP
        PERFORM cti.refresh_call(v_call_id, p_event.received_at, p_live);
    END LOOP;
    IF cardinality(v_calls) = 0 THEN
        status := 'ignored';
        detail := array_to_string(v_notes, '; ');
    ELSE
        status := 'processed';
    END IF;
END
$$;
