-- Undo 0015: the bodies of apply_fact (0009) and refresh_call (0010) as they were, then the extension columns.
SET LOCAL ROLE cti_owner;

-- Store one fact; returns the call it belongs to.
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

-- Derived from the stored facts only, so the result does not depend on the order frames
-- arrived in. Commands are sent for changes of the derived state, so a repeated or late
-- frame sends nothing twice, and a card is closed before it is opened elsewhere.
-- p_live = false (rebuild) updates state without sending anything.
CREATE OR REPLACE FUNCTION cti.refresh_call(p_call_id bigint, p_at timestamptz, p_live boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old cti.call;
    v_new cti.call;
    v_leg cti.call_leg;
    v_bridged text[];
    v_bridged_at timestamptz[];
    v_chain text[] := '{}';
    v_chain_at timestamptz[] := '{}';
    v_desired_ws bigint;
    v_recipient bigint;
    v_id record;
BEGIN
    SELECT * INTO v_old FROM cti.call WHERE id = p_call_id FOR UPDATE;
    v_new := v_old;

    -- Direction and the customer's number. A leg whose caller is not one of our extensions
    -- (anonymous included) means a customer called in; an extension calling a non-extension is outbound.
    SELECT * INTO v_leg FROM cti.call_leg
     WHERE call_id = p_call_id AND created_at IS NOT NULL AND NOT coalesce(cti.is_extension(caller), false)
     ORDER BY created_at, leg_uuid LIMIT 1;
    IF FOUND THEN
        v_new.direction := 'inbound';
        v_new.external_number := v_leg.caller;
        v_new.external_number_raw := v_leg.caller_raw;
        v_new.dialled := (SELECT destination_raw FROM cti.call_leg
                           WHERE call_id = p_call_id AND created_at IS NOT NULL
                             AND NOT coalesce(cti.is_extension(caller), false)
                             AND NOT coalesce(cti.is_extension(destination), false)
                           ORDER BY created_at, leg_uuid LIMIT 1);
    ELSE
        SELECT * INTO v_leg FROM cti.call_leg
         WHERE call_id = p_call_id AND created_at IS NOT NULL AND destination IS NOT NULL
           AND NOT cti.is_extension(destination)
         ORDER BY created_at, leg_uuid LIMIT 1;
        IF FOUND THEN
            v_new.direction := 'outbound';
            v_new.external_number := v_leg.destination;
            v_new.external_number_raw := v_leg.destination_raw;
        ELSIF EXISTS (SELECT FROM cti.call_leg WHERE call_id = p_call_id AND created_at IS NOT NULL) THEN
            v_new.direction := 'internal';
        END IF;
    END IF;
    v_new.started_at := (SELECT min(created_at) FROM cti.call_leg WHERE call_id = p_call_id);
    v_new.last_event_at := greatest(v_old.last_event_at, p_at);

    -- Who answered: inbound, the first extension leg to answer that is not a consultation
    -- between colleagues (ring-all and hunt groups: first answer wins); outbound, the
    -- extension that dialled, once the far end answered.
    v_new.answered_at := NULL;
    v_new.answered_by := NULL;
    IF v_new.direction = 'inbound' THEN
        SELECT answered_at, destination INTO v_new.answered_at, v_new.answered_by FROM cti.call_leg
         WHERE call_id = p_call_id AND answered_at IS NOT NULL AND cti.is_extension(destination)
           AND NOT coalesce(cti.is_extension(caller), false)
         ORDER BY answered_at, leg_uuid LIMIT 1;
        -- Every extension leg bridged to the customer's side (a leg not dialling one of our
        -- extensions), in time order: blind, attended and chained transfers all show this way.
        -- Ordered by when that leg answered (the PBX's clock); a bridge event carries no time of
        -- its own, and its arrival order is not to be trusted.
        SELECT coalesce(array_agg(x.destination ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}'),
               coalesce(array_agg(coalesce(x.answered_at, b.bridged_at)
                                  ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}')
          INTO v_bridged, v_bridged_at
          FROM cti.call_bridge b
          JOIN cti.call_leg x ON x.call_id = b.call_id AND x.leg_uuid IN (b.leg_a, b.leg_b)
          JOIN cti.call_leg y ON y.call_id = b.call_id AND y.leg_uuid IN (b.leg_a, b.leg_b) AND y.leg_uuid <> x.leg_uuid
         WHERE b.call_id = p_call_id AND cti.is_extension(x.destination)
           AND y.destination IS NOT NULL AND NOT cti.is_extension(y.destination);
    ELSIF v_new.direction = 'outbound' THEN
        SELECT answered_at, caller INTO v_new.answered_at, v_new.answered_by FROM cti.call_leg
         WHERE call_id = p_call_id AND answered_at IS NOT NULL AND destination IS NOT NULL
           AND NOT cti.is_extension(destination) AND cti.is_extension(caller)
         ORDER BY answered_at, leg_uuid LIMIT 1;
    ELSIF v_new.direction = 'internal' THEN  -- recorded for history; internal calls pop no card
        SELECT answered_at, destination INTO v_new.answered_at, v_new.answered_by FROM cti.call_leg
         WHERE call_id = p_call_id AND answered_at IS NOT NULL
         ORDER BY answered_at, leg_uuid LIMIT 1;
    END IF;
    -- Who held the call, in order: the first to answer, then each new extension bridged to the
    -- customer. Derived from the facts alone, so it is the same whatever order frames arrived in.
    IF v_new.answered_by IS NOT NULL THEN
        v_chain := ARRAY[v_new.answered_by];
        v_chain_at := ARRAY[v_new.answered_at];
        FOR i IN 1 .. coalesce(cardinality(v_bridged), 0) LOOP
            IF v_bridged[i] <> v_chain[cardinality(v_chain)] THEN
                v_chain := v_chain || v_bridged[i];
                v_chain_at := v_chain_at || v_bridged_at[i];
            END IF;
        END LOOP;
    END IF;
    v_new.holder_extension := v_chain[cardinality(v_chain)];

    -- Ended when the PBX says so, or when every leg we know of has hung up.
    IF v_new.pbx_ended OR NOT EXISTS (SELECT FROM cti.call_leg WHERE call_id = p_call_id AND ended_at IS NULL) THEN
        v_new.ended_at := coalesce(v_old.ended_at,
                                   (SELECT max(ended_at) FROM cti.call_leg WHERE call_id = p_call_id), p_at);
        v_new.outcome := CASE
            WHEN v_new.answered_by IS NOT NULL THEN 'answered'
            WHEN EXISTS (SELECT FROM cti.call_leg WHERE call_id = p_call_id
                          AND hangup_cause IN ('USER_BUSY', 'CALL_REJECTED')) THEN 'busy'
            WHEN v_new.direction = 'outbound' THEN 'no_answer'
            -- the customer hung up while it rang: the PBX cancels the ringing legs
            WHEN EXISTS (SELECT FROM cti.call_leg WHERE call_id = p_call_id
                          AND hangup_cause = 'ORIGINATOR_CANCEL') THEN 'abandoned'
            ELSE 'missed' END;
        v_new.hangup_cause := coalesce(v_old.hangup_cause,
            (SELECT hangup_cause FROM cti.call_leg WHERE call_id = p_call_id AND hangup_cause IS NOT NULL
              ORDER BY ended_at DESC NULLS LAST, leg_uuid LIMIT 1));
    END IF;

    -- The client, looked up once per call as soon as the customer's number is known.
    IF v_new.client_match IS NULL AND v_new.external_number IS NOT NULL
       AND NOT cti.is_extension(v_new.external_number) THEN
        SELECT i.client_id, i.client_match, i.candidates, i.card
          INTO v_new.client_id, v_new.client_match, v_new.client_candidates, v_new.client_card
          FROM cti.identify_client(v_new, v_new.direction = 'inbound') i;
    END IF;

    -- The transfers are the steps of that chain: 101 -> 102 -> 103.
    IF (SELECT coalesce(array_agg(to_extension ORDER BY step), '{}') FROM cti.call_transfer WHERE call_id = p_call_id)
       IS DISTINCT FROM coalesce(v_chain[2:], '{}') THEN
        DELETE FROM cti.call_transfer WHERE call_id = p_call_id;
        INSERT INTO cti.call_transfer (call_id, step, from_extension, to_extension, transferred_at)
        SELECT p_call_id, i - 1, v_chain[i - 1], v_chain[i], v_chain_at[i]
          FROM generate_subscripts(v_chain, 1) i WHERE i > 1;
    END IF;

    -- Ring: every recipient hears about a customer's call once, while it rings.
    IF NOT v_new.ring_notified AND v_new.direction = 'inbound' AND v_new.ended_at IS NULL THEN
        v_new.ring_notified := true;
        IF p_live THEN
            FOR v_recipient IN SELECT r FROM cti.crm_ring_recipients(v_new.dialled) r LOOP
                PERFORM cti.enqueue('emp', v_recipient, 'ring', p_call_id, cti.call_payload(v_new));
            END LOOP;
        END IF;
    END IF;

    -- The card: open at the holder's workstation while the call lasts; moved on transfer
    -- (closed first, then opened); `call_ended` where it is open when the call ends.
    v_new.routing_note := NULL;
    IF v_new.direction IN ('inbound', 'outbound') AND v_new.ended_at IS NULL AND v_new.holder_extension IS NOT NULL THEN
        v_desired_ws := cti.crm_workstation_for_extension(v_new.holder_extension);
        IF v_desired_ws IS NULL THEN
            v_new.routing_note := format('extension %s has no workstation', v_new.holder_extension);
        END IF;
    END IF;
    IF v_desired_ws IS DISTINCT FROM v_old.card_workstation_id THEN
        IF v_old.card_workstation_id IS NOT NULL AND p_live THEN
            PERFORM cti.enqueue('ws', v_old.card_workstation_id,
                                CASE WHEN v_new.ended_at IS NULL THEN 'close_card' ELSE 'call_ended' END,
                                p_call_id, cti.call_payload(v_new));
        END IF;
        IF v_desired_ws IS NOT NULL AND p_live THEN
            PERFORM cti.enqueue('ws', v_desired_ws, 'open_card', p_call_id, cti.call_payload(v_new));
        END IF;
        v_new.card_workstation_id := v_desired_ws;
    END IF;

    IF v_new IS DISTINCT FROM v_old THEN
        UPDATE cti.call SET
            direction = v_new.direction, external_number = v_new.external_number,
            external_number_raw = v_new.external_number_raw, dialled = v_new.dialled,
            client_id = v_new.client_id, client_match = v_new.client_match,
            client_candidates = v_new.client_candidates, client_card = v_new.client_card,
            started_at = v_new.started_at, last_event_at = v_new.last_event_at, answered_at = v_new.answered_at, answered_by = v_new.answered_by,
            holder_extension = v_new.holder_extension, ended_at = v_new.ended_at, outcome = v_new.outcome,
            hangup_cause = v_new.hangup_cause, ring_notified = v_new.ring_notified,
            card_workstation_id = v_new.card_workstation_id, routing_note = v_new.routing_note
         WHERE id = p_call_id;
    END IF;
END
$$;
ALTER TABLE cti.call_leg DROP COLUMN caller_is_extension, DROP COLUMN destination_is_extension;
