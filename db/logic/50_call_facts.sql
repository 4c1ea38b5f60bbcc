-- Storing facts: legs, bridges, holds and the PBX's end of a call, and merging two calls.
--
-- Rules:
-- - A fact is stored on its leg (cti.call_leg) or bridge (cti.call_bridge), never on the
--   call row: the call is derived from them (55_derive_calls.sql), so frames may arrive in
--   any order, twice, or late, and the call comes out the same.
-- - A leg's numbers are normalised here, once, when it is written.
-- - Two calls that turn out to be one (a bridge joins them) are merged; what the gone call
--   already told people (ring, card) stays told.
-- - There is one implementation of applying facts, cti.apply_facts(); apply_fact() finds or
--   creates the call of a single fact by its call id and hands it over. It knows no PBX: a
--   PBX whose events name no call finds the call on its own path (42 for API 2.0).
-- Why the set functions pin plan_cache_mode = force_generic_plan: with array parameters
-- a custom plan always looks cheaper, and their statements were planned again on every
-- call. Why keyed lookups read `CROSS JOIN LATERAL (SELECT ... WHERE key = outer.key
-- OFFSET 0)`: a generic plan made while a table is empty must still be one index lookup
-- per key (lab note 2026-11-27-plans-made-on-empty-tables). Why a function that runs a
-- query is PL/pgSQL and a small expression a SQL-standard body: before PostgreSQL 18 a
-- LANGUAGE sql function that is not inlined is planned on every call; PL/pgSQL keeps its
-- plans, and a SQL-standard body is inlined (lab note
-- 2026-11-27-functions-planned-on-every-call).

-- Lock calls in id order, so two transactions locking overlapping sets cannot deadlock.
-- One lookup per id (see the header): `id = ANY (...)` was planned as a scan of the table.
CREATE OR REPLACE FUNCTION cti.lock_calls(p_calls bigint[]) RETURNS void
LANGUAGE plpgsql  -- not sql: see the header
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- arrays as parameters: see the header
AS $$
BEGIN
    PERFORM FROM (SELECT DISTINCT i.id FROM unnest(p_calls) i(id) ORDER BY i.id) i
      CROSS JOIN LATERAL (SELECT FROM cti.call c WHERE c.id = i.id FOR UPDATE) c;
END
$$;

COMMENT ON FUNCTION cti.lock_calls(bigint[]) IS 'Lock these calls (in id order: no deadlock between two sets)';

-- Apply facts whose call is known (call_id set): legs, bridges, holds, the PBX's end of
-- the call. At most one fact per leg and per call (a round's facts, or a single fact), so
-- no statement touches a row twice. Only the statements for the kinds present run.
CREATE OR REPLACE FUNCTION cti.apply_facts(p_source text, p_facts cti.frame_fact[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- arrays as parameters: see the header
AS $$
DECLARE
    v_known CONSTANT text[] := ARRAY['leg_created', 'leg_answered', 'leg_ended', 'leg_hold',
                                     'leg_unhold', 'bridged', 'call_ended', 'caller_withheld'];
    v_kinds text[];
    v_unknown text;
BEGIN
    -- One fact (a lone frame, frame by frame) is checked by expressions, not queries: each
    -- query is an executor set-up, and a lone frame is made of such (lab note 2026-11-27-a-lone-frame).
    IF cardinality(p_facts) = 1 THEN
        v_kinds := ARRAY[((p_facts[1]).fact).kind];
        v_unknown := CASE WHEN NOT v_kinds[1] = ANY (v_known) THEN v_kinds[1] END;
    ELSE
        v_kinds := ARRAY(SELECT DISTINCT (x.fact).kind FROM unnest(p_facts) x);
        v_unknown := (SELECT min(k) FROM unnest(v_kinds) k WHERE NOT k = ANY (v_known));
    END IF;
    IF v_unknown IS NOT NULL THEN
        RAISE EXCEPTION 'unknown fact kind "%"', v_unknown;
    END IF;
    IF 'leg_created' = ANY (v_kinds) THEN
        -- An end the fact calls an extension (AMI knows it from the channel) is kept as it
        -- is; otherwise the number is normalised and its shape decides.
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, caller, caller_raw, destination,
                                       destination_raw, created_at, caller_is_extension, destination_is_extension)
        SELECT p_source, (x.fact).leg, x.call_id, n.caller, (x.fact).caller_raw,
               n.destination, (x.fact).destination_raw, (x.fact).at,
               coalesce((x.fact).caller_is_extension, cti.is_extension(n.caller)),
               coalesce((x.fact).destination_is_extension, cti.is_extension(n.destination))
          FROM unnest(p_facts) x
         CROSS JOIN LATERAL (  -- OFFSET 0: each number normalised once, not once per use below
            SELECT CASE WHEN (x.fact).caller_is_extension THEN (x.fact).caller_raw
                        ELSE cti.normalize_phone((x.fact).caller_raw) END AS caller,
                   CASE WHEN (x.fact).destination_is_extension THEN (x.fact).destination_raw
                        ELSE cti.normalize_phone((x.fact).destination_raw) END AS destination
            OFFSET 0) n
         WHERE (x.fact).kind = 'leg_created'
        ON CONFLICT (source, leg_uuid) DO UPDATE
           SET caller = EXCLUDED.caller, caller_raw = EXCLUDED.caller_raw,
               destination = EXCLUDED.destination, destination_raw = EXCLUDED.destination_raw,
               created_at = EXCLUDED.created_at, caller_is_extension = EXCLUDED.caller_is_extension,
               destination_is_extension = EXCLUDED.destination_is_extension;
    END IF;
    IF 'leg_answered' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, answered_at)
        SELECT p_source, (x.fact).leg, x.call_id, (x.fact).at
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'leg_answered'
        ON CONFLICT (source, leg_uuid) DO UPDATE SET answered_at = coalesce(l.answered_at, EXCLUDED.answered_at);
    END IF;
    IF 'leg_ended' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, ended_at, hangup_cause)
        SELECT p_source, (x.fact).leg, x.call_id, (x.fact).at, (x.fact).cause
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'leg_ended'
        -- The earliest end counts; a cause that says more (busy, rejected, cancelled, not
        -- answered) wins over one that does not, whichever came first: AMI tells a dialled
        -- leg's end twice, as a Dial status and as a Hangup cause.
        ON CONFLICT (source, leg_uuid) DO UPDATE
           SET ended_at = least(l.ended_at, EXCLUDED.ended_at),
               hangup_cause = CASE WHEN l.hangup_cause IS NULL
                                     OR (l.hangup_cause NOT IN ('USER_BUSY', 'CALL_REJECTED', 'ORIGINATOR_CANCEL', 'NO_ANSWER')
                                         AND EXCLUDED.hangup_cause IN ('USER_BUSY', 'CALL_REJECTED', 'ORIGINATOR_CANCEL', 'NO_ANSWER'))
                                     -- Asterisk's Dial says BUSY for a phone that rejected the call
                                     -- too; the Hangup's cause 21 says which it was
                                     OR (l.hangup_cause = 'USER_BUSY' AND EXCLUDED.hangup_cause = 'CALL_REJECTED')
                                   THEN coalesce(EXCLUDED.hangup_cause, l.hangup_cause)
                                   ELSE l.hangup_cause END;
    END IF;
    IF 'caller_withheld' = ANY (v_kinds) THEN  -- once withheld, always: it is never shown
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, caller_withheld)
        SELECT p_source, (x.fact).leg, x.call_id, true
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'caller_withheld'
        ON CONFLICT (source, leg_uuid) DO UPDATE SET caller_withheld = true;
    END IF;
    IF 'leg_hold' = ANY (v_kinds) OR 'leg_unhold' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, on_hold)
        SELECT p_source, (x.fact).leg, x.call_id, (x.fact).kind = 'leg_hold'
          FROM unnest(p_facts) x WHERE (x.fact).kind IN ('leg_hold', 'leg_unhold')
        ON CONFLICT (source, leg_uuid) DO UPDATE SET on_hold = EXCLUDED.on_hold;
        UPDATE cti.call c SET hold_count = c.hold_count + 1
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'leg_hold' AND c.id = x.call_id;
    END IF;
    IF 'bridged' = ANY (v_kinds) THEN
        INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
        SELECT x.call_id, least((x.fact).leg, (x.fact).other_leg), greatest((x.fact).leg, (x.fact).other_leg), (x.fact).at
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'bridged'
        ON CONFLICT DO NOTHING;
    END IF;
    IF 'call_ended' = ANY (v_kinds) THEN
        -- The PBX's own end time wins over the time the last leg's hangup reached us.
        UPDATE cti.call c SET pbx_ended = true, ended_at = (x.fact).at, hangup_cause = coalesce(c.hangup_cause, (x.fact).cause)
          FROM unnest(p_facts) x WHERE (x.fact).kind = 'call_ended' AND c.id = x.call_id;
    END IF;
END
$$;

-- Store one fact; returns the call it belongs to. The call is found or created here (and
-- locked: frames of one call are applied one at a time; written only when new, because an
-- upsert leaves a dead row version per frame that later lookups in the transaction step
-- over); the fact itself is applied by cti.apply_facts(), as in the rounds.
CREATE OR REPLACE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint;
BEGIN
    IF p_fact.call_key IS NULL THEN  -- a PBX without call ids goes its own path (42 for 2.0)
        RAISE EXCEPTION 'a % fact without a call id: its PBX''s own path finds its call', p_source
            USING ERRCODE = 'invalid_parameter_value';
    ELSE
        -- As cti.call_of_key() finds it, a half at a time, so that the common case is one
        -- query: by its own key, then through the alias of the call it was merged into.
        SELECT id INTO v_call_id FROM cti.call WHERE source = p_source AND pbx_call_id = p_fact.call_key FOR UPDATE;
        IF v_call_id IS NULL THEN
            SELECT c.id INTO v_call_id FROM cti.call_alias a JOIN cti.call c ON c.id = a.call_id
             WHERE a.source = p_source AND a.pbx_call_id = p_fact.call_key FOR UPDATE OF c;
        END IF;
        IF v_call_id IS NULL THEN
            INSERT INTO cti.call AS c (source, pbx_call_id) VALUES (p_source, p_fact.call_key)
            ON CONFLICT (source, pbx_call_id) DO NOTHING
            RETURNING c.id INTO v_call_id;
        END IF;
        IF v_call_id IS NULL THEN  -- another transaction created it since our look
            SELECT id INTO v_call_id FROM cti.call WHERE source = p_source AND pbx_call_id = p_fact.call_key FOR UPDATE;
        END IF;
    END IF;

    PERFORM cti.apply_facts(p_source, ARRAY[ROW(NULL, NULL, p_fact, v_call_id, NULL)::cti.frame_fact]);
    RETURN v_call_id;
END
$$;

-- The call a PBX call id names: its own, or the call it was merged into.
CREATE OR REPLACE FUNCTION cti.call_of_key(p_source text, p_key text) RETURNS bigint
LANGUAGE plpgsql STABLE  -- not sql: see the header
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN coalesce((SELECT c.id FROM cti.call c WHERE c.source = p_source AND c.pbx_call_id = p_key),
                    (SELECT a.call_id FROM cti.call_alias a WHERE a.source = p_source AND a.pbx_call_id = p_key));
END
$$;

-- Fold call p_gone into p_keep: they turned out to be one call (a bridge joined them,
-- or a leg seen early turned out to ring for a customer's call). p_gone's PBX id (and the
-- ids merged into it before) name p_keep from now on: a leg of it seen later joins p_keep
-- instead of starting a call that would ring everyone again.
CREATE OR REPLACE FUNCTION cti.merge_calls(p_keep bigint, p_gone bigint) RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE cti.call_alias SET call_id = p_keep WHERE call_id = p_gone;
    INSERT INTO cti.call_alias (source, pbx_call_id, call_id)
    SELECT source, pbx_call_id, p_keep FROM cti.call WHERE id = p_gone
    ON CONFLICT (source, pbx_call_id) DO UPDATE SET call_id = EXCLUDED.call_id;
    UPDATE cti.call_leg SET call_id = p_keep WHERE call_id = p_gone;
    INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
    SELECT p_keep, leg_a, leg_b, bridged_at FROM cti.call_bridge WHERE call_id = p_gone
    ON CONFLICT DO NOTHING;
    UPDATE cti.registered_number SET call_id = p_keep WHERE call_id = p_gone;
    -- What the gone call already told people stays told: no second ring, no second card,
    -- and a call it told had ended stays ended (its end is the customer's end).
    UPDATE cti.call k SET hold_count = k.hold_count + g.hold_count,
                          ring_notified = k.ring_notified OR g.ring_notified,
                          ended_at = coalesce(k.ended_at, g.ended_at),
                          outcome = coalesce(k.outcome, g.outcome),
                          hangup_cause = coalesce(k.hangup_cause, g.hangup_cause),
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
