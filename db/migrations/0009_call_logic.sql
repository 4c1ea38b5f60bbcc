-- Call logic: store facts, derive the call (direction, client, who holds it, outcome), send ring notifications and card commands.
-- depends: 0008_onlinepbx3

SET LOCAL ROLE cti_owner;

-- Unknown numbers pgcti registered, one row per number: the unique key makes
-- registration happen once, and rebuild knows which call registered it.
CREATE TABLE cti.registered_number (
    e164 text PRIMARY KEY,
    client_id bigint NOT NULL,
    call_id bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- Store one fact; returns the call it belongs to.
CREATE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
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
