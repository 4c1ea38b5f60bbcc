-- Undo 0017: frame by frame again (the trigger of 0014, refresh_call of 0015, enqueue of 0007).
SET LOCAL ROLE cti_owner;

-- The trigger of 0014.
CREATE OR REPLACE FUNCTION cti.tg_raw_event__process() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER  -- runs as the owner: the ingester may insert raw events and nothing else
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event cti.raw_event;
    v_ids bigint[] := '{}';
    v_status text[] := '{}';
    v_detail text[] := '{}';
    v_result record;
BEGIN
    -- Fast path: the whole batch in one subtransaction.
    BEGIN
        FOR v_event IN SELECT * FROM new_events ORDER BY id LOOP
            v_result := cti.process_event(v_event, true);
            v_ids := v_ids || v_event.id;
            v_status := v_status || v_result.status;
            v_detail := v_detail || v_result.detail;
        END LOOP;
        INSERT INTO cti.event_outcome (raw_event_id, status, detail)
        SELECT * FROM unnest(v_ids, v_status, v_detail);
        RETURN NULL;
    EXCEPTION
        -- Conflicts with another transaction are not the frame's fault: the INSERT fails
        -- and the ingester retries the batch (its spool keeps it meanwhile).
        WHEN deadlock_detected OR serialization_failure OR lock_not_available OR query_canceled THEN
            RAISE;
        WHEN others THEN
            NULL;  -- a frame failed: everything the batch did is undone; go frame by frame
    END;
    -- Slow path: each frame in its own subtransaction, its error recorded beside it.
    FOR v_event IN SELECT * FROM new_events ORDER BY id LOOP
        PERFORM cti.process_and_record(v_event, true);
    END LOOP;
    RETURN NULL;
END
$$;

DROP FUNCTION cti.process_frame_by_frame(cti.raw_event[]);
DROP FUNCTION cti.process_in_rounds(cti.raw_event[]);
DROP FUNCTION cti.process_round(cti.frame_fact[]);
DROP TYPE cti.frame_fact;

-- refresh_call as in 0015.
DROP FUNCTION cti.refresh_call(bigint, timestamptz, boolean);
-- Derived from the stored facts only, so the result does not depend on the order frames
-- arrived in. Commands are sent for changes of the derived state, so a repeated or late
-- frame sends nothing twice, and a card is closed before it is opened elsewhere.
-- p_live = false (rebuild) updates state without sending anything.
-- Everything the derivation needs from the legs, bridges and transfers is read by the one
-- query below (each statement of a PL/pgSQL function costs a round through the executor).
CREATE FUNCTION cti.refresh_call(p_call_id bigint, p_at timestamptz, p_live boolean) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_old cti.call;
    v_new cti.call;
    v_legs record;
    v_chain text[] := '{}';
    v_chain_at timestamptz[] := '{}';
    v_desired_ws bigint;
    v_recipient bigint;
BEGIN
    SELECT * INTO v_old FROM cti.call WHERE id = p_call_id FOR UPDATE;
    v_new := v_old;

    WITH leg AS MATERIALIZED (
        SELECT * FROM cti.call_leg WHERE call_id = p_call_id
    ),
    -- The customer's leg: a leg whose caller is not one of our extensions (anonymous included).
    inbound AS (
        SELECT caller, caller_raw FROM leg WHERE created_at IS NOT NULL AND NOT caller_is_extension
         ORDER BY created_at, leg_uuid LIMIT 1
    ),
    -- Outbound: an extension's leg dialling a number that is not ours.
    outbound AS (
        SELECT destination, destination_raw FROM leg
         WHERE created_at IS NOT NULL AND destination IS NOT NULL AND NOT destination_is_extension
         ORDER BY created_at, leg_uuid LIMIT 1
    ),
    -- Who answered. Inbound: the first extension leg to answer that is not a consultation
    -- between colleagues (ring-all and hunt groups: first answer wins).
    inbound_answer AS (
        SELECT answered_at, destination FROM leg
         WHERE answered_at IS NOT NULL AND destination_is_extension AND NOT caller_is_extension
         ORDER BY answered_at, leg_uuid LIMIT 1
    ),
    -- Outbound: the extension that dialled, once the far end answered.
    outbound_answer AS (
        SELECT answered_at, caller FROM leg
         WHERE answered_at IS NOT NULL AND destination IS NOT NULL AND NOT destination_is_extension
           AND caller_is_extension
         ORDER BY answered_at, leg_uuid LIMIT 1
    ),
    -- Internal: recorded for history; internal calls pop no card.
    internal_answer AS (
        SELECT answered_at, destination FROM leg WHERE answered_at IS NOT NULL
         ORDER BY answered_at, leg_uuid LIMIT 1
    ),
    -- Every extension leg bridged to the customer's side (a leg not dialling one of our
    -- extensions): blind, attended and chained transfers all show this way. Ordered by when
    -- that leg answered (the PBX's clock); a bridge event carries no time of its own, and its
    -- arrival order is not to be trusted.
    bridged AS (
        SELECT coalesce(array_agg(x.destination ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS extensions,
               coalesce(array_agg(coalesce(x.answered_at, b.bridged_at)
                                  ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS times
          FROM cti.call_bridge b
          JOIN leg x ON x.leg_uuid IN (b.leg_a, b.leg_b)
          JOIN leg y ON y.leg_uuid IN (b.leg_a, b.leg_b) AND y.leg_uuid <> x.leg_uuid
         WHERE b.call_id = p_call_id AND x.destination_is_extension
           AND y.destination IS NOT NULL AND NOT y.destination_is_extension
    )
    SELECT (SELECT caller FROM inbound) AS in_number, (SELECT caller_raw FROM inbound) AS in_number_raw,
           EXISTS (SELECT FROM inbound) AS is_inbound,
           (SELECT destination_raw FROM leg WHERE created_at IS NOT NULL AND NOT caller_is_extension
                                              AND NOT destination_is_extension
             ORDER BY created_at, leg_uuid LIMIT 1) AS in_dialled,
           (SELECT destination FROM outbound) AS out_number, (SELECT destination_raw FROM outbound) AS out_number_raw,
           EXISTS (SELECT FROM outbound) AS is_outbound,
           EXISTS (SELECT FROM leg WHERE created_at IS NOT NULL) AS is_internal,
           (SELECT min(created_at) FROM leg) AS started_at,
           (SELECT answered_at FROM inbound_answer) AS in_answered_at,
           (SELECT destination FROM inbound_answer) AS in_answered_by,
           (SELECT answered_at FROM outbound_answer) AS out_answered_at,
           (SELECT caller FROM outbound_answer) AS out_answered_by,
           (SELECT answered_at FROM internal_answer) AS int_answered_at,
           (SELECT destination FROM internal_answer) AS int_answered_by,
           (SELECT extensions FROM bridged) AS bridged, (SELECT times FROM bridged) AS bridged_at,
           NOT EXISTS (SELECT FROM leg WHERE ended_at IS NULL) AS all_legs_ended,
           (SELECT max(ended_at) FROM leg) AS last_leg_ended,
           EXISTS (SELECT FROM leg WHERE hangup_cause IN ('USER_BUSY', 'CALL_REJECTED')) AS busy,
           -- the customer hung up while it rang: the PBX cancels the ringing legs
           EXISTS (SELECT FROM leg WHERE hangup_cause = 'ORIGINATOR_CANCEL') AS cancelled,
           (SELECT hangup_cause FROM leg WHERE hangup_cause IS NOT NULL
             ORDER BY ended_at DESC NULLS LAST, leg_uuid LIMIT 1) AS leg_cause,
           (SELECT coalesce(array_agg(to_extension ORDER BY step), '{}') FROM cti.call_transfer
             WHERE call_id = p_call_id) AS transfers
      INTO v_legs;

    -- Direction and the customer's number: a customer's leg means inbound; an extension
    -- calling a number that is not ours, outbound; legs between extensions only, internal.
    IF v_legs.is_inbound THEN
        v_new.direction := 'inbound';
        v_new.external_number := v_legs.in_number;
        v_new.external_number_raw := v_legs.in_number_raw;
        v_new.dialled := v_legs.in_dialled;
    ELSIF v_legs.is_outbound THEN
        v_new.direction := 'outbound';
        v_new.external_number := v_legs.out_number;
        v_new.external_number_raw := v_legs.out_number_raw;
    ELSIF v_legs.is_internal THEN
        v_new.direction := 'internal';
    END IF;
    v_new.started_at := v_legs.started_at;
    v_new.last_event_at := greatest(v_old.last_event_at, p_at);

    v_new.answered_at := NULL;
    v_new.answered_by := NULL;
    IF v_new.direction = 'inbound' THEN
        v_new.answered_at := v_legs.in_answered_at;
        v_new.answered_by := v_legs.in_answered_by;
    ELSIF v_new.direction = 'outbound' THEN
        v_new.answered_at := v_legs.out_answered_at;
        v_new.answered_by := v_legs.out_answered_by;
    ELSIF v_new.direction = 'internal' THEN
        v_new.answered_at := v_legs.int_answered_at;
        v_new.answered_by := v_legs.int_answered_by;
    END IF;
    -- Who held the call, in order: the first to answer, then each new extension bridged to the
    -- customer (inbound only). Derived from the facts alone, so it is the same whatever order frames arrived in.
    IF v_new.answered_by IS NOT NULL THEN
        v_chain := ARRAY[v_new.answered_by];
        v_chain_at := ARRAY[v_new.answered_at];
        IF v_new.direction = 'inbound' THEN
            FOR i IN 1 .. coalesce(cardinality(v_legs.bridged), 0) LOOP
                IF v_legs.bridged[i] <> v_chain[cardinality(v_chain)] THEN
                    v_chain := v_chain || v_legs.bridged[i];
                    v_chain_at := v_chain_at || v_legs.bridged_at[i];
                END IF;
            END LOOP;
        END IF;
    END IF;
    v_new.holder_extension := v_chain[cardinality(v_chain)];

    -- Ended when the PBX says so, or when every leg we know of has hung up.
    IF v_new.pbx_ended OR v_legs.all_legs_ended THEN
        v_new.ended_at := coalesce(v_old.ended_at, v_legs.last_leg_ended, p_at);
        v_new.outcome := CASE
            WHEN v_new.answered_by IS NOT NULL THEN 'answered'
            WHEN v_legs.busy THEN 'busy'
            WHEN v_new.direction = 'outbound' THEN 'no_answer'
            WHEN v_legs.cancelled THEN 'abandoned'
            ELSE 'missed' END;
        v_new.hangup_cause := coalesce(v_old.hangup_cause, v_legs.leg_cause);
    END IF;

    -- The client, looked up once per call as soon as the customer's number is known.
    IF v_new.client_match IS NULL AND v_new.external_number IS NOT NULL
       AND NOT cti.is_extension(v_new.external_number) THEN
        SELECT i.client_id, i.client_match, i.candidates, i.card
          INTO v_new.client_id, v_new.client_match, v_new.client_candidates, v_new.client_card
          FROM cti.identify_client(v_new, v_new.direction = 'inbound') i;
    END IF;

    -- The transfers are the steps of that chain: 101 -> 102 -> 103.
    IF v_legs.transfers IS DISTINCT FROM coalesce(v_chain[2:], '{}') THEN
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
COMMENT ON FUNCTION cti.refresh_call(bigint, timestamptz, boolean) IS 'Derive a call from its facts and send what changed (ring, open_card, close_card, call_ended); p_live=false sends nothing';

DROP FUNCTION cti.send_commands(cti.keyed_command[]);
DROP FUNCTION cti.refresh_calls(bigint[], timestamptz[], bigint[], boolean);

-- enqueue as in 0007.
CREATE FUNCTION cti.enqueue(p_kind text, p_id bigint, p_type text, p_call_id bigint, p_payload jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_seq bigint;
BEGIN
    INSERT INTO cti.stream AS s (target_kind, target_id, last_seq) VALUES (p_kind, p_id, 1)
    ON CONFLICT (target_kind, target_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING s.last_seq INTO v_seq;
    INSERT INTO cti.outbox (target_kind, target_id, seq, type, call_id, payload)
    VALUES (p_kind, p_id, v_seq, p_type, p_call_id, p_payload);
    PERFORM pg_notify(cti.channel_name(p_kind, p_id),
                      json_build_object('type', p_type, 'seq', v_seq, 'call_id', p_call_id)::text);
    RETURN v_seq;
END
$$;

DROP FUNCTION cti.enqueue_all(cti.command[]);
DROP TYPE cti.call_refresh;
DROP TYPE cti.refresh_result;
DROP TYPE cti.keyed_command;
DROP TYPE cti.command;
