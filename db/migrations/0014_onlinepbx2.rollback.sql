-- Undo 0014: the 3.0-only versions of apply_fact and process_event come back; 2.0 events stay stored.
CREATE OR REPLACE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint;
BEGIN
    -- The no-op update returns the id and locks the call row: frames of one call are applied one at a time.
    INSERT INTO cti.call AS c (source, pbx_call_id) VALUES (p_source, p_fact.call_key)
    ON CONFLICT (source, pbx_call_id) DO UPDATE SET source = c.source
    RETURNING c.id INTO v_call_id;

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
    IF p_event.source <> 'onlinepbx3' THEN
        RAISE EXCEPTION 'no normaliser for source "%"', p_event.source USING HINT = 'known sources: onlinepbx3';
    END IF;
    FOR v_fact IN SELECT * FROM cti.normalize_onlinepbx3(p_event.frame, p_event.received_at) LOOP
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

DROP FUNCTION cti.correlate_onlinepbx2(text, cti.fact);
DROP FUNCTION cti.merge_calls(bigint, bigint);
DROP FUNCTION cti.normalize_onlinepbx2(jsonb, timestamptz);
