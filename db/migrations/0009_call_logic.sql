-- Call logic: store facts, derive the call (direction, client, who holds it, outcome), send ring notifications and card commands.
-- depends: 0008_normalisers

SET LOCAL ROLE cti_owner;

-- Unknown numbers pgcti registered, one row per number: the unique key makes
-- registration happen once, and rebuild knows which call registered it.
CREATE TABLE cti.registered_number (
    e164 text PRIMARY KEY,
    client_id bigint NOT NULL,
    call_id bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

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

-- Store one fact; returns the call it belongs to.
CREATE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
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

-- Find the caller in the CRM once per call; register an unknown number exactly once,
-- even when two calls from it arrive at the same moment on two connections.
CREATE FUNCTION cti.identify_client(p_call cti.call, p_register boolean)
RETURNS TABLE (client_id bigint, client_match text, candidates bigint[], card jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_found jsonb;
    v_registered cti.registered_number;
BEGIN
    IF p_register THEN
        -- Serialise registrations of this number; the lock is released at commit, after which
        -- the other transaction's lookup (a new statement, a new snapshot) sees the new lead.
        PERFORM pg_advisory_xact_lock(hashtext('cti.registered_number'), hashtext(p_call.external_number));
        SELECT * INTO v_registered FROM cti.registered_number r WHERE r.e164 = p_call.external_number;
        IF v_registered.call_id = p_call.id THEN  -- a rebuild meets the call that registered it
            client_id := v_registered.client_id;
            client_match := 'new';
        END IF;
    END IF;
    IF client_match IS NULL THEN
        SELECT jsonb_agg(to_jsonb(l) ORDER BY l.client_id) INTO v_found
          FROM cti.crm_lookup(p_call.external_number) l;
        CASE coalesce(jsonb_array_length(v_found), 0)
            WHEN 0 THEN
                IF p_register THEN
                    client_id := cti.crm_register_unknown(p_call.external_number);
                    INSERT INTO cti.registered_number (e164, client_id, call_id)
                    VALUES (p_call.external_number, client_id, p_call.id)
                    ON CONFLICT (e164) DO UPDATE SET client_id = EXCLUDED.client_id, call_id = EXCLUDED.call_id;
                    client_match := 'new';
                ELSE
                    client_match := 'none';
                END IF;
            WHEN 1 THEN
                client_id := (v_found -> 0 ->> 'client_id')::bigint;
                client_match := 'exact';
                card := v_found -> 0;
            ELSE
                client_match := 'ambiguous';
                candidates := ARRAY(SELECT (e ->> 'client_id')::bigint FROM jsonb_array_elements(v_found) e);
                card := jsonb_build_object('candidates', v_found);
        END CASE;
    END IF;
    IF card IS NULL AND client_id IS NOT NULL THEN
        SELECT to_jsonb(l) INTO card FROM cti.crm_lookup(p_call.external_number) l WHERE l.client_id = identify_client.client_id;
    END IF;
    RETURN NEXT;
END
$$;

-- The card / notification body a client shows: ids, the number and the client as looked up.
CREATE FUNCTION cti.call_payload(p_call cti.call) RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
        'call_id', p_call.id, 'direction', p_call.direction,
        'number', coalesce(p_call.external_number, p_call.external_number_raw), 'dialled', p_call.dialled,
        'client_id', p_call.client_id, 'match', p_call.client_match, 'is_new', p_call.client_match = 'new',
        'client_name', p_call.client_card ->> 'client_name', 'company', p_call.client_card ->> 'company',
        'manager_id', (p_call.client_card ->> 'manager_id')::bigint,
        'manager_surname', p_call.client_card ->> 'manager_surname',
        'candidates', p_call.client_card -> 'candidates',
        'extension', p_call.holder_extension))
$$;
