-- Processing: what happens to the raw events an INSERT stores (rebuild: 67_rebuild.sql).
--
-- Rules:
-- - A trigger never loses the row that fired it: a frame whose processing fails is stored
--   with the error as its outcome (cti.event_outcome), and the INSERT commits.
-- - Every stored frame is processed in the transaction that stores it, so only what has
--   something to say gets a note (cti.event_note: ignored, failed, or processed with a
--   detail); cti.event_outcome, one row per frame, says `processed` for the rest. A row
--   for each clean frame cost a lone frame 6-16% of its time (lab note 2026-11-27-a-lone-frame).
-- - Each INSERT's frames are processed as one batch by a statement trigger: onlinePBX 3.0
--   batches in rounds (a set of distinct calls per round), other sources frame by frame,
--   and a subtransaction per frame only when a frame fails. Each path gives what processing
--   the frames one at a time gives (tests compare them).
-- - Conflicts with another transaction (deadlock, serialization, lock timeout, cancel) are
--   not the frame's fault: the INSERT fails and the ingester retries from its spool.
-- - Calls whose end was lost are ended by the ingester's tick, itself a raw event, so a
--   rebuild ends the same calls at the same point.
-- - Only a login registered in this database's cti.ingester_login (or a DBA) may write raw
--   events: roles are cluster-wide, so membership in cti_ingester alone would let a login
--   made for another database on the same server write here.
-- Why batches: per frame, the dozen statements around the work cost more than the work
-- (lab note 2026-11-25-throughput-from-1000-to-5000). Why enable_seqscan is off while
-- processing: every statement looks rows up by key, and a plan made while a table was
-- small read all of it as it grew (lab note 2026-11-27-plans-made-on-empty-tables); jit
-- goes off with it, since before 18 a disabled scan that cannot be avoided looked worth
-- compiling. Why plan_cache_mode is pinned for all of processing: statements whose
-- parameters are rows or arrays got a custom plan, planned again on every execution (lab
-- note 2026-11-27-functions-planned-on-every-call). The adapters a DBA writes run under
-- both settings too.

-- One call, frame by frame (2.0, the tick, rebuild, the per-frame fallback).
CREATE OR REPLACE FUNCTION cti.derive_call(p_call_id bigint, p_at timestamptz, p_live boolean) RETURNS void
LANGUAGE plpgsql  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.lock_calls(ARRAY[p_call_id]);
    PERFORM cti.send_commands((cti.derive_calls(ARRAY[p_call_id], ARRAY[p_at], ARRAY[0::bigint], p_live)).commands);
END
$$;

COMMENT ON FUNCTION cti.derive_call(bigint, timestamptz, boolean) IS 'Derive a call from its facts and send what changed (ring, open_card, close_card, call_ended); p_live=false sends nothing';

-- Turn one raw event into facts, apply them, derive the calls they touch.
-- Raises on bad frames; cti.process_and_record() turns that into a 'failed' outcome.
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
    IF p_event.source = 'pgcti' AND p_event.frame ->> 'event' = 'dial_response' THEN
        status := 'processed';  -- the edge's report on a dial request (54_dialing.sql)
        detail := cti.dial_outcome_from_edge(p_event.frame, p_event.received_at);
        RETURN;
    END IF;
    IF p_event.source = 'pgcti' AND p_event.frame ->> 'event' = 'dial_check' THEN
        status := 'processed';  -- onlinePBX names no call in its answer: look for the calls placed
        detail := format('%s dial request(s) settled',
                         CASE WHEN p_live THEN cti.settle_dial_requests(p_event.received_at) ELSE 0 END);
        RETURN;
    END IF;
    IF p_event.source = 'pgcti' THEN  -- the ingester's housekeeping tick
        status := 'processed';
        detail := format('tick: %s stale call(s) ended', cti.end_stale_calls(p_event.received_at, p_live));
        IF p_live THEN  -- housekeeping, not history: a rebuild leaves the outbox and requests alone
            PERFORM cti.prune_outbox(p_event.received_at);
            PERFORM cti.settle_dial_requests(p_event.received_at);
            PERFORM cti.prune_recordings(p_event.received_at);
        END IF;
        RETURN;
    END IF;
    IF p_event.source = 'asterisk' AND p_event.frame ->> 'Event' IN ('DeviceStateChange', 'ExtensionStatus', 'QueueMemberPause') THEN
        status := 'processed';  -- presence, now only: a rebuild does not replay it (56_presence.sql)
        detail := CASE WHEN p_live THEN cti.presence_from_ami(p_event.frame, p_event.received_at)
                       ELSE 'presence: not replayed' END;
        RETURN;
    END IF;
    IF p_event.source = 'asterisk' AND p_event.frame ->> 'Event' IN ('QueueCallerJoin', 'QueueCallerLeave',
            'QueueCallerAbandon', 'AgentCalled', 'AgentConnect', 'AgentComplete', 'AgentRingNoAnswer', 'VarSet') THEN
        -- queue facts beside the call facts these events also carry (53_queue_facts.sql)
        PERFORM cti.queue_fact_from_ami(p_event.source, p_event.frame, p_event.received_at);
    END IF;
    IF p_event.source = 'asterisk' AND (p_event.frame ->> 'Event' IN ('VarSet', 'MixMonitorStop', 'Hangup')
                                         OR (p_event.frame ->> 'Event' = 'Newexten'  -- one that runs MixMonitor
                                             AND p_event.frame -> 'fields' @> '[["Application", "MixMonitor"]]')) THEN
        PERFORM cti.recording_from_ami(p_event.source, p_event.frame, p_event.received_at);  -- 59_recordings.sql
    END IF;
    IF p_event.source = 'asterisk' AND coalesce(p_event.frame ->> 'Event', 'OriginateResponse') = 'OriginateResponse' THEN
        -- an Originate pgcti sent: its outcome, or the error it got (54_dialing.sql)
        detail := cti.dial_outcome_from_ami(p_event.frame, p_event.received_at);
        IF detail IS NOT NULL THEN
            status := 'processed';
            RETURN;
        END IF;
    END IF;
    IF p_event.source = 'onlinepbx2' AND p_event.frame ->> 'name' = 'callback' THEN
        detail := cti.dial_outcome_from_onlinepbx2(p_event.frame, p_event.received_at);  -- a make_call's answer
        IF detail IS NOT NULL THEN
            status := 'processed';
            RETURN;
        END IF;
    END IF;
    IF p_event.source IN ('onlinepbx2', 'onlinepbx3') AND cti.onlinepbx_presence_event(p_event.frame) THEN
        -- presence, now only, as for AMI (56_presence.sql); 2.0's blf also says who answered
        IF NOT p_live THEN
            status := 'processed';
            detail := 'presence: not replayed';
        ELSE
            SELECT * INTO status, detail FROM cti.presence_from_onlinepbx(p_event.frame, p_event.received_at);
        END IF;
        IF p_event.frame ->> 'name' IS DISTINCT FROM 'blf' THEN
            RETURN;
        END IF;
        status := NULL;
        detail := NULL;
    END IF;
    IF p_event.source NOT IN ('onlinepbx3', 'onlinepbx2', 'asterisk') THEN
        RAISE EXCEPTION 'no fact function for source "%"', p_event.source
            USING HINT = 'known sources: onlinepbx3, onlinepbx2, asterisk';
    END IF;
    FOR v_fact IN
        SELECT * FROM cti.facts_from_onlinepbx3(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx3'
        UNION ALL
        SELECT * FROM cti.facts_from_onlinepbx2(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx2'
        UNION ALL
        SELECT * FROM cti.facts_from_asterisk(p_event.frame, p_event.received_at) WHERE p_event.source = 'asterisk'
    LOOP
        IF v_fact.kind = 'ignored' THEN
            v_notes := v_notes || v_fact.note;
        ELSIF p_event.source = 'asterisk' THEN  -- calls found through legs and bridges (52_asterisk_calls.sql)
            v_calls := v_calls || ARRAY(SELECT c FROM unnest(cti.apply_asterisk_fact(p_event.source, v_fact, p_event.id)) c
                                         WHERE c <> ALL (v_calls));
        ELSE
            v_call_id := CASE WHEN p_event.source = 'onlinepbx2'  -- no call ids (42_facts_onlinepbx2.sql)
                              THEN cti.apply_onlinepbx2_fact(p_event.source, v_fact)
                              ELSE cti.apply_fact(p_event.source, v_fact) END;
            IF NOT v_call_id = ANY (v_calls) THEN
                v_calls := v_calls || v_call_id;
            END IF;
        END IF;
    END LOOP;
    FOREACH v_call_id IN ARRAY v_calls LOOP
        IF EXISTS (SELECT FROM cti.call WHERE id = v_call_id) THEN  -- not merged away since
            PERFORM cti.derive_call(v_call_id, p_event.received_at, p_live);
        END IF;
    END LOOP;
    IF cardinality(v_calls) = 0 AND cardinality(v_notes) > 0 THEN
        status := 'ignored';
        detail := array_to_string(v_notes, '; ');
    ELSE
        status := 'processed';
    END IF;
END
$$;

-- What processing made of each raw event, one row per event: its note, or `processed`
-- (with processed_at NULL: processed as it was stored) where it has none.
CREATE OR REPLACE VIEW cti.event_outcome AS
SELECT r.id AS raw_event_id, coalesce(n.status, 'processed') AS status, n.detail, n.processed_at
  FROM cti.raw_event r LEFT JOIN cti.event_note n ON n.raw_event_id = r.id;

COMMENT ON VIEW cti.event_outcome IS 'Processing result beside each raw event: processed, ignored (with why) or failed (with the error)';

-- A trigger never loses the row that fired it: any error is caught (its subtransaction
-- rolled back) and stored as the event's note; the INSERT itself commits. Rebuild comes
-- here too, so a note left by an earlier run goes when the event is now clean.
CREATE OR REPLACE FUNCTION cti.process_and_record(p_event cti.raw_event, p_live boolean) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_detail text;
BEGIN
    BEGIN
        SELECT r.status, r.detail INTO v_status, v_detail FROM cti.process_event(p_event, p_live) r;
    EXCEPTION WHEN others THEN
        v_status := 'failed';
        v_detail := SQLERRM;
    END;
    IF v_status = 'processed' AND v_detail IS NULL THEN
        DELETE FROM cti.event_note WHERE raw_event_id = p_event.id;
    ELSE
        INSERT INTO cti.event_note (raw_event_id, status, detail) VALUES (p_event.id, v_status, v_detail)
        ON CONFLICT (raw_event_id) DO UPDATE
           SET status = EXCLUDED.status, detail = EXCLUDED.detail, processed_at = EXCLUDED.processed_at;
    END IF;
    RETURN v_status;
END
$$;

CREATE OR REPLACE FUNCTION cti.process_round(p_facts cti.frame_fact[]) RETURNS cti.derivation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the header
AS $$
DECLARE
    v_facts cti.frame_fact[];
    v_calls bigint[];
    v_ats timestamptz[];
    v_keys bigint[];
BEGIN
    -- New calls are created in the order of their frames (as frame by frame would), then
    -- every call of the round is locked, in id order, before its facts are applied.
    INSERT INTO cti.call (source, pbx_call_id)
    SELECT 'onlinepbx3', (x.fact).call_key FROM unnest(p_facts) x
     WHERE (x.fact).call_key IS NOT NULL
       AND NOT EXISTS (SELECT FROM cti.call c WHERE c.source = 'onlinepbx3' AND c.pbx_call_id = (x.fact).call_key OFFSET 0)
     ORDER BY x.raw_event_id
    ON CONFLICT (source, pbx_call_id) DO NOTHING;
    PERFORM cti.lock_calls(ARRAY(
        SELECT c.id FROM unnest(p_facts) x
         CROSS JOIN LATERAL (SELECT c.id FROM cti.call c
                              WHERE c.source = 'onlinepbx3' AND c.pbx_call_id = (x.fact).call_key OFFSET 0) c));
    SELECT array_agg(ROW(x.raw_event_id, x.received_at, x.fact, c.id, x.round)::cti.frame_fact ORDER BY x.raw_event_id),
           array_agg(c.id ORDER BY x.raw_event_id), array_agg(x.received_at ORDER BY x.raw_event_id),
           array_agg(x.raw_event_id ORDER BY x.raw_event_id)
      INTO v_facts, v_calls, v_ats, v_keys
      FROM unnest(p_facts) x
     CROSS JOIN LATERAL (SELECT c.id FROM cti.call c
                          WHERE c.source = 'onlinepbx3' AND c.pbx_call_id = (x.fact).call_key OFFSET 0) c;

    PERFORM cti.apply_facts('onlinepbx3', v_facts);

    RETURN cti.derive_calls(v_calls, v_ats, v_keys, true);
END
$$;

-- Process a batch of onlinePBX 3.0 frames a set at a time, in rounds: round 1 holds the
-- first frame of each call in the batch, round 2 the second, and so on. A round's calls
-- are distinct, so it is applied and derived with one statement per step for all of them;
-- each call still goes through its frames one at a time, in order. What calls share is
-- put back in frame order: commands are sent at the end, sorted by the frame that caused
-- them, and client lookups must have run in frame order whenever one of them registered
-- an unknown number (otherwise this raises 'CTIR1' and the caller goes frame by frame).
-- So a batch gives what processing its frames one at a time gives (a test compares the
-- two), with a few statements per round instead of a dozen per frame. Under live traffic
-- calls interleave, and a batch of 500 frames is a handful of rounds.
-- Returns false, having changed nothing, when the batch needs the frame-by-frame path:
-- frames of another source (2.0 is correlated frame by frame; the tick ends stale calls
-- at its place in the stream) or a leg that appears under two calls. A frame whose
-- fact function raises fails this whole function, and the caller goes frame by frame.
CREATE OR REPLACE FUNCTION cti.process_in_rounds(p_events cti.raw_event[]) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the header
AS $$
DECLARE
    v_facts cti.frame_fact[];
    v_round cti.derivation_result;
    v_commands cti.keyed_command[] := '{}';
    v_lookup_keys bigint[] := '{}';
    v_registered boolean := false;
    v_callback_steps cti.call_derivation[] := '{}';
    v_callback_keys bigint[] := '{}';
    v_step cti.call_derivation;
    v_presence_event cti.raw_event;
    v_presence record;
    v_presence_ids bigint[] := '{}';
    v_presence_statuses text[] := '{}';
    v_presence_notes text[] := '{}';
BEGIN
    IF EXISTS (SELECT FROM unnest(p_events) e WHERE e.parse_error IS NULL AND e.source <> 'onlinepbx3') THEN
        RETURN false;
    END IF;
    SELECT coalesce(array_agg(ROW(x.id, x.received_at, x.f, NULL,
                                  CASE WHEN (x.f).call_key IS NOT NULL AND (x.f).kind <> 'ignored' THEN x.nth END
                                  )::cti.frame_fact ORDER BY x.id), '{}')
      INTO v_facts
      -- An ignored fact (channel_unbridge names its call) is in no round: it changes nothing.
      FROM (SELECT e.id, e.received_at, f,
                   row_number() OVER (PARTITION BY f.call_key, f.kind = 'ignored' ORDER BY e.id) AS nth
              FROM unnest(p_events) e CROSS JOIN LATERAL cti.facts_from_onlinepbx3(e.frame, e.received_at) f
             WHERE e.parse_error IS NULL) x;
    IF cardinality(v_facts) <> (SELECT count(*) FROM unnest(p_events) e WHERE e.parse_error IS NULL)
       OR EXISTS (SELECT FROM unnest(v_facts) x
                   WHERE (x.fact).kind NOT IN ('ignored', 'leg_created', 'leg_answered', 'leg_ended',
                                               'leg_hold', 'leg_unhold', 'bridged', 'call_ended'))
       -- A leg stays in one call, within the batch and with what is stored.
       OR EXISTS (SELECT FROM unnest(v_facts) x WHERE (x.fact).kind LIKE 'leg%'
                   GROUP BY (x.fact).leg HAVING count(DISTINCT (x.fact).call_key) > 1)
       OR EXISTS (SELECT FROM unnest(v_facts) x
                    CROSS JOIN LATERAL (SELECT l.call_id FROM cti.call_leg l
                                         WHERE l.source = 'onlinepbx3' AND l.leg_uuid = (x.fact).leg OFFSET 0) l
                    CROSS JOIN LATERAL (SELECT c.pbx_call_id FROM cti.call c WHERE c.id = l.call_id OFFSET 0) c
                   WHERE (x.fact).kind LIKE 'leg%' AND c.pbx_call_id <> (x.fact).call_key) THEN
        RETURN false;
    END IF;

    -- Presence (3.0's user_blf and user_registration) changes no call: applied first, in
    -- frame order; such a frame's fact is an ignored one, and its note what presence made of it.
    FOR v_presence_event IN SELECT e.* FROM unnest(p_events) e
                             WHERE e.parse_error IS NULL AND cti.onlinepbx_presence_event(e.frame) ORDER BY e.id LOOP
        v_presence := cti.presence_from_onlinepbx(v_presence_event.frame, v_presence_event.received_at);
        v_presence_ids := v_presence_ids || v_presence_event.id;
        v_presence_statuses := v_presence_statuses || v_presence.status;
        v_presence_notes := v_presence_notes || v_presence.detail;
    END LOOP;

    FOR r IN 1 .. coalesce((SELECT max(x.round) FROM unnest(v_facts) x), 0) LOOP
        v_round := cti.process_round(ARRAY(SELECT x FROM unnest(v_facts) x WHERE x.round = r ORDER BY x.raw_event_id));
        v_commands := v_commands || v_round.commands;
        v_lookup_keys := v_lookup_keys || v_round.lookup_keys;
        v_registered := v_registered OR v_round.registered;
        v_callback_steps := v_callback_steps || v_round.callback_steps;
        v_callback_keys := v_callback_keys || v_round.callback_keys;
    END LOOP;
    -- Callback tasks depend on the order of one party's calls: tracked now, in frame order,
    -- as frame by frame would (each derivation numbered by its place in that order).
    IF cardinality(v_callback_steps) > 0 THEN
        SELECT array_agg(v_callback_steps[i] ORDER BY v_callback_keys[i], i),
               array_agg(v_callback_keys[i] ORDER BY v_callback_keys[i], i)
          INTO v_callback_steps, v_callback_keys
          FROM generate_subscripts(v_callback_keys, 1) AS i;
        FOR i IN 1 .. cardinality(v_callback_steps) LOOP
            v_step := v_callback_steps[i];
            v_step.ord := i;
            v_callback_steps[i] := v_step;
        END LOOP;
        v_commands := v_commands || cti.track_callbacks(v_callback_steps, v_callback_keys, true);
    END IF;
    IF v_registered AND v_lookup_keys IS DISTINCT FROM ARRAY(SELECT k FROM unnest(v_lookup_keys) k ORDER BY k) THEN
        RAISE EXCEPTION 'client lookups ran out of frame order and one registered a number'
            USING ERRCODE = 'CTIR1', HINT = 'the batch is processed again frame by frame';
    END IF;
    PERFORM cti.send_commands(v_commands);

    INSERT INTO cti.event_note (raw_event_id, status, detail)
    SELECT e.id,
           CASE WHEN e.parse_error IS NOT NULL THEN 'failed' WHEN p.id IS NOT NULL THEN p.status ELSE 'ignored' END,
           CASE WHEN e.parse_error IS NOT NULL THEN e.parse_error WHEN p.id IS NOT NULL THEN p.note ELSE (x.fact).note END
      FROM unnest(p_events) e LEFT JOIN unnest(v_facts) x ON x.raw_event_id = e.id
      LEFT JOIN unnest(v_presence_ids, v_presence_statuses, v_presence_notes) p (id, status, note) ON p.id = e.id
     WHERE e.parse_error IS NOT NULL OR (x.fact).kind = 'ignored'  -- a clean frame has no note
     ORDER BY e.id;
    RETURN true;
END
$$;

-- Each frame of a batch, one at a time, in order; raises when a frame fails.
CREATE OR REPLACE FUNCTION cti.process_frame_by_frame(p_events cti.raw_event[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event cti.raw_event;
    v_result record;
BEGIN
    FOREACH v_event IN ARRAY p_events LOOP
        v_result := cti.process_event(v_event, true);
        IF v_result.status <> 'processed' OR v_result.detail IS NOT NULL THEN  -- a clean frame has no note
            INSERT INTO cti.event_note (raw_event_id, status, detail) VALUES (v_event.id, v_result.status, v_result.detail);
        END IF;
    END LOOP;
END
$$;

-- The processing trigger: rounds for onlinePBX 3.0 batches (a lone frame its own way), frame by frame otherwise, and a subtransaction per frame only when a frame fails.
CREATE OR REPLACE FUNCTION cti.tg_raw_event__process() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER  -- runs as the owner: the ingester may insert raw events and nothing else
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off  -- see the header
SET jit = off
SET plan_cache_mode = force_generic_plan  -- everything it runs: see the header
AS $$
DECLARE
    v_events cti.raw_event[];
    v_event cti.raw_event;
    v_try_rounds boolean := true;
BEGIN
    -- Roles are cluster-wide: only a login registered in this database (or a DBA) writes here.
    IF NOT EXISTS (SELECT FROM cti.ingester_login l WHERE l.login = session_user)
       AND NOT pg_has_role(session_user, 'cti_owner', 'MEMBER')
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user) THEN
        RAISE EXCEPTION 'login % may not write raw events in database %', session_user, current_database()
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('register it here: INSERT INTO cti.ingester_login (login) VALUES (%L)', session_user);
    END IF;
    SELECT array_agg(ROW(e.*)::cti.raw_event ORDER BY e.id) INTO v_events FROM new_events e;
    -- Fast path: the whole batch in one subtransaction, in rounds when it can be.
    FOR v_attempt IN 1 .. 2 LOOP
        BEGIN
            IF v_try_rounds THEN
                v_try_rounds := CASE WHEN cardinality(v_events) = 1 THEN cti.process_lone_frame(v_events[1])  -- 66_lone_frame.sql
                                     ELSE cti.process_in_rounds(v_events) END;
            END IF;
            IF NOT v_try_rounds THEN
                PERFORM cti.process_frame_by_frame(v_events);
            END IF;
            RETURN NULL;
        EXCEPTION
            WHEN SQLSTATE 'CTIR1' THEN
                v_try_rounds := false;  -- undone; the same frames again, one at a time
            -- Conflicts with another transaction are not the frame's fault: the INSERT fails
            -- and the ingester retries the batch (its spool keeps it meanwhile).
            WHEN deadlock_detected OR serialization_failure OR lock_not_available OR query_canceled THEN
                RAISE;
            WHEN others THEN
                EXIT;  -- a frame failed: everything the batch did is undone; go frame by frame
        END;
    END LOOP;
    -- Slow path: each frame in its own subtransaction, its error recorded beside it.
    FOREACH v_event IN ARRAY v_events LOOP
        PERFORM cti.process_and_record(v_event, true);
    END LOOP;
    RETURN NULL;
END
$$;

-- AFTER, so that a duplicate frame (ON CONFLICT DO NOTHING) never reaches processing:
-- the transition table holds only the rows actually inserted.
CREATE OR REPLACE TRIGGER _500_process AFTER INSERT ON cti.raw_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_raw_event__process();

-- End calls that have heard nothing for cti.config.stale_call_after: their end was lost
-- (sent while the PBX connection was down; the PBX does not re-send). Run by the ingester's
-- tick, a raw event like any other, so a rebuild ends the same calls at the same point.
CREATE OR REPLACE FUNCTION cti.end_stale_calls(p_now timestamptz, p_live boolean) RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint;
    v_count int := 0;
BEGIN
    FOR v_call_id IN
        SELECT c.id FROM cti.call c, cti.config g
         WHERE c.ended_at IS NULL AND c.last_event_at < p_now - g.stale_call_after
         ORDER BY c.id
           FOR UPDATE OF c SKIP LOCKED
    LOOP
        UPDATE cti.call SET pbx_ended = true, ended_at = last_event_at,
                            hangup_cause = coalesce(hangup_cause, 'PGCTI_STALE')
         WHERE id = v_call_id;
        PERFORM cti.derive_call(v_call_id, p_now, p_live);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION cti.end_stale_calls(timestamptz, boolean) IS 'End calls silent for cti.config.stale_call_after (their end was lost); cards get call_ended';
