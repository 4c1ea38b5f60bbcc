-- A lone frame: an INSERT of one onlinePBX 3.0 frame, what a quiet site sends most.
--
-- Rules:
-- - It gives what a round of one gives (cti.process_in_rounds, 65_processing.sql): the same
--   facts applied, the same derivation, commands, callback tasks and outcome (tests compare
--   it with the frame-by-frame path at a chunk size of one).
-- - It takes the frame only when a round of one would: a single fact of a kind the rounds
--   apply, a leg that stays in its call. Otherwise it returns false having changed nothing,
--   and the caller goes frame by frame, as a round of one would have.
-- - A frame whose fact function raises fails this function; the trigger records the error
--   beside the frame (the slow path), as for any batch.
-- Why a path of its own: a round numbers a batch's facts into rounds and checks the batch
-- as a whole (a window over the facts, five checks, a join for the outcomes). For one frame
-- that was about a fifth of its processing time, and the latency a quiet site feels is
-- made of such statements (lab note 2026-11-27-a-lone-frame).

CREATE OR REPLACE FUNCTION cti.process_lone_frame(p_event cti.raw_event) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see 65_processing.sql
AS $$
DECLARE
    v_facts cti.fact[];
    v_fact cti.fact;
    v_call_id bigint;
    v_derived cti.derivation_result;
    v_commands cti.keyed_command[];
BEGIN
    IF p_event.parse_error IS NOT NULL THEN
        INSERT INTO cti.event_note (raw_event_id, status, detail) VALUES (p_event.id, 'failed', p_event.parse_error);
        RETURN true;
    END IF;
    IF p_event.source <> 'onlinepbx3' THEN
        RETURN false;  -- other sources go frame by frame (cti.process_in_rounds says why)
    END IF;
    IF cti.onlinepbx_presence_event(p_event.frame) THEN  -- changes no call (56_presence.sql)
        INSERT INTO cti.event_note (raw_event_id, status, detail)
        SELECT p_event.id, r.status, r.detail FROM cti.presence_from_onlinepbx(p_event.frame, p_event.received_at) r;
        RETURN true;
    END IF;
    v_facts := ARRAY(SELECT f FROM cti.facts_from_onlinepbx3(p_event.frame, p_event.received_at) f);
    IF cardinality(v_facts) <> 1 THEN
        RETURN false;
    END IF;
    v_fact := v_facts[1];
    IF v_fact.kind = 'ignored' THEN
        INSERT INTO cti.event_note (raw_event_id, status, detail) VALUES (p_event.id, 'ignored', v_fact.note);
        RETURN true;
    END IF;
    IF v_fact.call_key IS NULL
       OR v_fact.kind NOT IN ('leg_created', 'leg_answered', 'leg_ended', 'leg_hold', 'leg_unhold', 'bridged', 'call_ended')
       -- A leg stays in one call.
       OR v_fact.kind LIKE 'leg%' AND EXISTS (
            SELECT FROM cti.call_leg l JOIN cti.call c ON c.id = l.call_id
             WHERE l.source = 'onlinepbx3' AND l.leg_uuid = v_fact.leg AND c.pbx_call_id <> v_fact.call_key) THEN
        RETURN false;
    END IF;

    -- The call found or made, and locked, and the fact applied (as frame by frame does).
    v_call_id := cti.apply_fact('onlinepbx3', v_fact);
    -- Keyed by the frame, as in a round: callback tasks come back to be tracked here.
    v_derived := cti.derive_calls(ARRAY[v_call_id], ARRAY[p_event.received_at], ARRAY[p_event.id], true);
    v_commands := v_derived.commands;
    IF cardinality(v_derived.callback_steps) > 0 THEN
        v_commands := v_commands || cti.track_callbacks(v_derived.callback_steps, v_derived.callback_keys, true);
    END IF;
    IF cardinality(v_commands) > 0 THEN  -- most frames send nothing
        PERFORM cti.send_commands(v_commands);
    END IF;
    RETURN true;  -- a clean frame has no note (65_processing.sql)
END
$$;

COMMENT ON FUNCTION cti.process_lone_frame(cti.raw_event) IS 'Process an INSERT''s only frame as a round of one would, in fewer statements; false (nothing changed) when it needs the frame-by-frame path';
