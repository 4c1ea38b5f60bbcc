-- Derive and apply calls a set at a time: refresh_calls() for many calls in one pass, and onlinePBX 3.0 batches processed in rounds.
-- depends: 0016_field_paths_in_errors

SET LOCAL ROLE cti_owner;

-- Why: per frame, the cost was not the work but the number of statements around it
-- (about a dozen per frame, each a trip through the executor, plus PL/pgSQL glue). A
-- row trigger doing one statement per frame runs at about 0.8 of a bare INSERT on the
-- same server; the frame-by-frame pipeline at under 0.1. Here the same rules run once
-- per set of calls. `cti.refresh_call()` is now `cti.refresh_calls()` with one call, so
-- there is one implementation of the rules, whichever path a frame takes.

-- The set functions below pin plan_cache_mode: their parameters are arrays, and a custom
-- plan (which sees the array's contents) always looks cheaper than the generic one, so
-- PostgreSQL would re-plan their big statements on every call (measured: most of the time).

-- One command for a CRM client: what cti.enqueue_all() appends, in array order.
CREATE TYPE cti.command AS (
    target_kind text,
    target_id bigint,
    type text,
    call_id bigint,
    payload jsonb
);

-- A command with its place among the commands of a batch: the frame that caused it, then
-- the step within that frame's refresh (ring, close, open) and the recipient.
CREATE TYPE cti.keyed_command AS (
    frame_key bigint,
    step int,
    sub bigint,
    command cti.command
);

-- What refreshing a set of calls produced: the commands to send (not yet sent), and the
-- frames at which a client was looked up, in the order it was done, and whether any
-- lookup registered an unknown number (registration is the one effect shared between calls).
CREATE TYPE cti.refresh_result AS (
    commands cti.keyed_command[],
    lookup_keys bigint[],
    registered boolean
);

-- One call's refresh: its state before and after, and what follows from the change.
CREATE TYPE cti.call_refresh AS (
    ord int,                  -- position in the refresh: commands are sent in this order
    before_state cti.call,
    after_state cti.call,
    chain text[],             -- who held the call, in order (first answer, then transfers)
    chain_at timestamptz[],
    transfers_differ boolean, -- cti.call_transfer must be rewritten from the chain
    ring_now boolean,         -- the recipients hear of this call now
    needs_client boolean      -- the customer's number is known and not looked up yet
);

-- Append commands to their targets' streams, in array order, and ring each doorbell.
-- Each target's last_seq is taken under its row lock (held to commit), so a client that
-- has seen N has seen everything up to N. The doorbell carries type and ids only.
CREATE FUNCTION cti.enqueue_all(p_commands cti.command[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the note at the top
AS $$
DECLARE
    v_rung bigint;
BEGIN
    IF coalesce(cardinality(p_commands), 0) = 0 THEN
        RETURN;
    END IF;
    WITH cmd AS (
        SELECT * FROM unnest(p_commands) WITH ORDINALITY AS u(target_kind, target_id, type, call_id, payload, n)
    ),
    per_target AS (
        SELECT target_kind, target_id, count(*) AS how_many FROM cmd GROUP BY 1, 2
    ),
    streams AS (
        INSERT INTO cti.stream AS s (target_kind, target_id, last_seq)
        SELECT target_kind, target_id, how_many FROM per_target ORDER BY 1, 2
        ON CONFLICT (target_kind, target_id) DO UPDATE SET last_seq = s.last_seq + EXCLUDED.last_seq
        RETURNING s.target_kind, s.target_id, s.last_seq
    ),
    numbered AS (
        SELECT c.*, st.last_seq - p.how_many
                    + row_number() OVER (PARTITION BY c.target_kind, c.target_id ORDER BY c.n) AS seq
          FROM cmd c
          JOIN per_target p USING (target_kind, target_id)
          JOIN streams st USING (target_kind, target_id)
    ),
    stored AS (
        INSERT INTO cti.outbox (target_kind, target_id, seq, type, call_id, payload)
        SELECT target_kind, target_id, seq, type, call_id, payload FROM numbered ORDER BY n
    )
    SELECT count(pg_notify(cti.channel_name(target_kind, target_id),
                           json_build_object('type', type, 'seq', seq, 'call_id', call_id)::text))
      INTO v_rung
      FROM (SELECT * FROM numbered ORDER BY n) x;
END
$$;
COMMENT ON FUNCTION cti.enqueue_all(cti.command[]) IS 'Append commands to their targets'' streams in order and ring the doorbells (type, seq, call id only)';

-- Every command now goes through cti.enqueue_all(); the one-at-a-time version goes, so
-- there is a single place that numbers commands and rings doorbells.
DROP FUNCTION cti.enqueue(text, bigint, text, bigint, jsonb);

-- Derive a set of distinct calls from their stored facts and say what changed (ring,
-- open_card, close_card, call_ended) as commands for the caller to send; p_ats[i] is when
-- the frame that touched p_calls[i] arrived, p_keys[i] that frame's place (commands are
-- keyed by it). Clients are looked up in array order. p_live = false returns no commands.
-- The rules are those of 0010 (see the comments there and in docs/architecture.md):
-- the state is derived from the facts alone; commands follow changes of that state.
CREATE FUNCTION cti.refresh_calls(p_calls bigint[], p_ats timestamptz[], p_keys bigint[], p_live boolean)
RETURNS cti.refresh_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the note at the top
AS $$
DECLARE
    v_steps cti.call_refresh[];
    v_step cti.call_refresh;
    v_call cti.call;
    v_result cti.refresh_result := ROW('{}', '{}', false);
    v_any_lookup boolean;    -- what the set needs beyond the update: statements for nothing are skipped
    v_any_transfer boolean;
    v_any_command boolean;
BEGIN
    -- Locked in id order, so two transactions refreshing overlapping sets cannot deadlock here.
    PERFORM FROM cti.call WHERE id = ANY (p_calls) ORDER BY id FOR UPDATE;

    SELECT array_agg(ROW(i.ord, o, n.after_state, ch.chain, ch.chain_at,
                         d.transfers IS DISTINCT FROM coalesce(ch.chain[2:], '{}'),
                         NOT o.ring_notified AND coalesce(dir.direction = 'inbound' AND en.ended_at IS NULL, false),
                         o.client_match IS NULL AND dir.external_number IS NOT NULL
                             AND NOT cti.is_extension(dir.external_number))::cti.call_refresh ORDER BY i.ord),
           bool_or(o.client_match IS NULL AND dir.external_number IS NOT NULL
                   AND NOT cti.is_extension(dir.external_number)),
           bool_or(d.transfers IS DISTINCT FROM coalesce(ch.chain[2:], '{}')),
           bool_or(NOT o.ring_notified AND coalesce(dir.direction = 'inbound' AND en.ended_at IS NULL, false)
                   OR ws.workstation IS DISTINCT FROM o.card_workstation_id)
      INTO v_steps, v_any_lookup, v_any_transfer, v_any_command
      FROM unnest(p_calls, p_ats) WITH ORDINALITY AS i(call_id, at, ord)
      JOIN cti.call o ON o.id = i.call_id
     CROSS JOIN LATERAL (
        WITH leg AS MATERIALIZED (
            SELECT * FROM cti.call_leg WHERE call_id = o.id
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
        -- extensions), ordered by when it answered (the PBX's clock; a bridge event has no
        -- time of its own and its arrival order is not to be trusted).
        bridged AS (
            SELECT coalesce(array_agg(x.destination ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS extensions,
                   coalesce(array_agg(coalesce(x.answered_at, b.bridged_at)
                                      ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS times
              FROM cti.call_bridge b
              JOIN leg x ON x.leg_uuid IN (b.leg_a, b.leg_b)
              JOIN leg y ON y.leg_uuid IN (b.leg_a, b.leg_b) AND y.leg_uuid <> x.leg_uuid
             WHERE b.call_id = o.id AND x.destination_is_extension
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
                 WHERE call_id = o.id) AS transfers
     ) d
     -- Direction and the customer's number: a customer's leg means inbound; an extension
     -- calling a number that is not ours, outbound; legs between extensions only, internal.
     CROSS JOIN LATERAL (
        SELECT CASE WHEN d.is_inbound THEN 'inbound' WHEN d.is_outbound THEN 'outbound'
                    WHEN d.is_internal THEN 'internal' ELSE o.direction END AS direction,
               CASE WHEN d.is_inbound THEN d.in_number WHEN d.is_outbound THEN d.out_number
                    ELSE o.external_number END AS external_number,
               CASE WHEN d.is_inbound THEN d.in_number_raw WHEN d.is_outbound THEN d.out_number_raw
                    ELSE o.external_number_raw END AS external_number_raw,
               CASE WHEN d.is_inbound THEN d.in_dialled ELSE o.dialled END AS dialled
     ) dir
     CROSS JOIN LATERAL (
        SELECT CASE dir.direction WHEN 'inbound' THEN d.in_answered_at WHEN 'outbound' THEN d.out_answered_at
                                  WHEN 'internal' THEN d.int_answered_at END AS answered_at,
               CASE dir.direction WHEN 'inbound' THEN d.in_answered_by WHEN 'outbound' THEN d.out_answered_by
                                  WHEN 'internal' THEN d.int_answered_by END AS answered_by
     ) ans
     -- Who held the call, in order: the first to answer, then each new extension bridged to
     -- the customer (inbound only); a repeat of the current holder is no transfer.
     CROSS JOIN LATERAL (
        SELECT coalesce(array_agg(x.extension ORDER BY x.n), '{}') AS chain,
               coalesce(array_agg(x.at ORDER BY x.n), '{}') AS chain_at
          FROM (SELECT u.extension, u.at, u.n, lag(u.extension) OVER (ORDER BY u.n) AS previous
                  FROM unnest(ARRAY[ans.answered_by] || CASE WHEN dir.direction = 'inbound' THEN d.bridged ELSE '{}' END,
                              ARRAY[ans.answered_at] || CASE WHEN dir.direction = 'inbound' THEN d.bridged_at ELSE '{}' END)
                       WITH ORDINALITY AS u(extension, at, n)
                 WHERE ans.answered_by IS NOT NULL) x
         WHERE x.previous IS NULL OR x.extension <> x.previous
     ) ch
     -- Ended when the PBX says so, or when every leg we know of has hung up; once ended, the
     -- end time stays (a leg seen later does not reopen the call).
     CROSS JOIN LATERAL (
        SELECT o.pbx_ended OR d.all_legs_ended AS ending,
               CASE WHEN o.pbx_ended OR d.all_legs_ended THEN coalesce(o.ended_at, d.last_leg_ended, i.at)
                    ELSE o.ended_at END AS ended_at,
               ch.chain[cardinality(ch.chain)] AS holder
     ) en
     -- The card: open at the holder's workstation while the call lasts (inbound and outbound).
     CROSS JOIN LATERAL (
        SELECT coalesce(dir.direction IN ('inbound', 'outbound'), false) AND en.ended_at IS NULL AND en.holder IS NOT NULL AS wants_card
     ) wc
     CROSS JOIN LATERAL (
        SELECT CASE WHEN wc.wants_card THEN cti.crm_workstation_for_extension(en.holder) END AS workstation
     ) ws
     CROSS JOIN LATERAL (
        SELECT jsonb_populate_record(o, jsonb_build_object(
            'direction', dir.direction, 'external_number', dir.external_number,
            'external_number_raw', dir.external_number_raw, 'dialled', dir.dialled,
            'started_at', d.started_at, 'last_event_at', greatest(o.last_event_at, i.at),
            'answered_at', ans.answered_at, 'answered_by', ans.answered_by, 'holder_extension', en.holder,
            'ended_at', en.ended_at,
            'outcome', CASE WHEN NOT en.ending THEN o.outcome
                            WHEN ans.answered_by IS NOT NULL THEN 'answered'
                            WHEN d.busy THEN 'busy'
                            WHEN dir.direction = 'outbound' THEN 'no_answer'
                            WHEN d.cancelled THEN 'abandoned'
                            ELSE 'missed' END,
            'hangup_cause', CASE WHEN en.ending THEN coalesce(o.hangup_cause, d.leg_cause) ELSE o.hangup_cause END,
            -- every recipient hears about a customer's call once, while it rings
            'ring_notified', o.ring_notified OR coalesce(dir.direction = 'inbound' AND en.ended_at IS NULL, false),
            'card_workstation_id', ws.workstation,
            'routing_note', CASE WHEN wc.wants_card AND ws.workstation IS NULL
                                 THEN format('extension %s has no workstation', en.holder) END)) AS after_state
     ) n;

    -- The client, looked up once per call as soon as the customer's number is known (in
    -- order: an unknown number is registered by the first of its calls).
    FOR i IN 1 .. CASE WHEN v_any_lookup THEN cardinality(v_steps) ELSE 0 END LOOP
        v_step := v_steps[i];
        IF v_step.needs_client THEN
            v_call := v_step.after_state;
            SELECT c.client_id, c.client_match, c.candidates, c.card
              INTO v_call.client_id, v_call.client_match, v_call.client_candidates, v_call.client_card
              FROM cti.identify_client(v_call, v_call.direction = 'inbound') c;
            v_step.after_state := v_call;
            v_steps[i] := v_step;
            v_result.lookup_keys := v_result.lookup_keys || p_keys[v_step.ord];
            v_result.registered := v_result.registered OR v_call.client_match = 'new';
        END IF;
    END LOOP;

    -- The transfers are the steps of the chain: 101 -> 102 -> 103.
    IF v_any_transfer THEN
        DELETE FROM cti.call_transfer t USING unnest(v_steps) s
         WHERE s.transfers_differ AND t.call_id = (s.after_state).id;
        INSERT INTO cti.call_transfer (call_id, step, from_extension, to_extension, transferred_at)
        SELECT (s.after_state).id, u.i - 1, s.chain[u.i - 1], s.chain[u.i], s.chain_at[u.i]
          FROM unnest(v_steps) s CROSS JOIN LATERAL generate_subscripts(s.chain, 1) AS u(i)
         WHERE s.transfers_differ AND u.i > 1;
    END IF;

    -- Commands, per call: ring each recipient; then, when the card moves, close it (or
    -- `call_ended` if the call is over) where it was, then open it where it should be.
    IF p_live AND v_any_command THEN
        v_result.commands := ARRAY(
            SELECT ROW(p_keys[c.ord], c.step, c.sub,
                       ROW(c.target_kind, c.target_id, c.type, ((c.s).after_state).id,
                           cti.call_payload((c.s).after_state))::cti.command)::cti.keyed_command
              FROM (SELECT s, s.ord, 1 AS step, r.n AS sub, 'emp' AS target_kind, r.id AS target_id, 'ring' AS type
                      FROM unnest(v_steps) s
                     CROSS JOIN LATERAL cti.crm_ring_recipients((s.after_state).dialled) WITH ORDINALITY AS r(id, n)
                     WHERE s.ring_now
                    UNION ALL
                    SELECT s, s.ord, 2, 1, 'ws', (s.before_state).card_workstation_id,
                           CASE WHEN (s.after_state).ended_at IS NULL THEN 'close_card' ELSE 'call_ended' END
                      FROM unnest(v_steps) s
                     WHERE (s.before_state).card_workstation_id IS NOT NULL
                       AND (s.after_state).card_workstation_id IS DISTINCT FROM (s.before_state).card_workstation_id
                    UNION ALL
                    SELECT s, s.ord, 3, 1, 'ws', (s.after_state).card_workstation_id, 'open_card'
                      FROM unnest(v_steps) s
                     WHERE (s.after_state).card_workstation_id IS NOT NULL
                       AND (s.after_state).card_workstation_id IS DISTINCT FROM (s.before_state).card_workstation_id
                   ) c
             ORDER BY c.ord, c.step, c.sub);
    END IF;

    UPDATE cti.call c SET
        direction = (s.after_state).direction, external_number = (s.after_state).external_number,
        external_number_raw = (s.after_state).external_number_raw, dialled = (s.after_state).dialled,
        client_id = (s.after_state).client_id, client_match = (s.after_state).client_match,
        client_candidates = (s.after_state).client_candidates, client_card = (s.after_state).client_card,
        started_at = (s.after_state).started_at, last_event_at = (s.after_state).last_event_at,
        answered_at = (s.after_state).answered_at, answered_by = (s.after_state).answered_by,
        holder_extension = (s.after_state).holder_extension, ended_at = (s.after_state).ended_at,
        outcome = (s.after_state).outcome, hangup_cause = (s.after_state).hangup_cause,
        ring_notified = (s.after_state).ring_notified, card_workstation_id = (s.after_state).card_workstation_id,
        routing_note = (s.after_state).routing_note
      FROM unnest(v_steps) s
     WHERE c.id = (s.after_state).id AND s.after_state IS DISTINCT FROM s.before_state;
    RETURN v_result;
END
$$;
COMMENT ON FUNCTION cti.refresh_calls(bigint[], timestamptz[], bigint[], boolean) IS 'Derive a set of calls from their facts; returns the commands that follow from what changed (none when p_live=false)';

-- Send commands in their order among the batch's frames.
CREATE FUNCTION cti.send_commands(p_commands cti.keyed_command[]) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT cti.enqueue_all(ARRAY(SELECT (k).command FROM unnest(p_commands) k
                                  ORDER BY (k).frame_key, (k).step, (k).sub))
$$;

-- One call, frame by frame (2.0, the tick, rebuild, the per-frame fallback).
CREATE OR REPLACE FUNCTION cti.refresh_call(p_call_id bigint, p_at timestamptz, p_live boolean) RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT cti.send_commands((cti.refresh_calls(ARRAY[p_call_id], ARRAY[p_at], ARRAY[0::bigint], p_live)).commands) $$;

-- A frame's fact, with the frame it came from and, once known, the call it belongs to.
CREATE TYPE cti.frame_fact AS (
    raw_event_id bigint,
    received_at timestamptz,
    fact cti.fact,
    call_id bigint,
    round int        -- 1 for a call's first frame in the batch, 2 for its second, ...
);

-- Apply the facts of a round (frames of distinct calls) and refresh its calls together.
-- The statements mirror cti.apply_fact(), one per kind of fact.
CREATE FUNCTION cti.process_round(p_facts cti.frame_fact[]) RETURNS cti.refresh_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the note at the top
AS $$
DECLARE
    v_facts cti.frame_fact[];
    v_kinds text[];  -- the kinds of fact present: the statements for the others are skipped
    v_calls bigint[];
    v_ats timestamptz[];
    v_keys bigint[];
BEGIN
    -- New calls are created in the order of their frames (as frame by frame would), then
    -- every call of the round is locked, in id order, before its facts are applied.
    INSERT INTO cti.call (source, pbx_call_id)
    SELECT 'onlinepbx3', (x.fact).call_key FROM unnest(p_facts) x
     WHERE (x.fact).call_key IS NOT NULL
       AND NOT EXISTS (SELECT FROM cti.call c WHERE c.source = 'onlinepbx3' AND c.pbx_call_id = (x.fact).call_key)
     ORDER BY x.raw_event_id
    ON CONFLICT (source, pbx_call_id) DO NOTHING;
    PERFORM FROM cti.call c
     WHERE c.source = 'onlinepbx3' AND c.pbx_call_id IN (SELECT (x.fact).call_key FROM unnest(p_facts) x)
     ORDER BY c.id FOR UPDATE;
    SELECT array_agg(ROW(x.raw_event_id, x.received_at, x.fact, c.id, x.round)::cti.frame_fact ORDER BY x.raw_event_id),
           array_agg(DISTINCT (x.fact).kind),
           array_agg(c.id ORDER BY x.raw_event_id), array_agg(x.received_at ORDER BY x.raw_event_id),
           array_agg(x.raw_event_id ORDER BY x.raw_event_id)
      INTO v_facts, v_kinds, v_calls, v_ats, v_keys
      FROM unnest(p_facts) x JOIN cti.call c ON c.source = 'onlinepbx3' AND c.pbx_call_id = (x.fact).call_key;

    IF 'leg_created' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, caller, caller_raw, destination,
                                       destination_raw, created_at)
        SELECT 'onlinepbx3', (x.fact).leg, x.call_id, cti.normalize_phone((x.fact).caller_raw), (x.fact).caller_raw,
               cti.normalize_phone((x.fact).destination_raw), (x.fact).destination_raw, (x.fact).at
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'leg_created'
        ON CONFLICT (source, leg_uuid) DO UPDATE
           SET caller = EXCLUDED.caller, caller_raw = EXCLUDED.caller_raw,
               destination = EXCLUDED.destination, destination_raw = EXCLUDED.destination_raw,
               created_at = EXCLUDED.created_at;
    END IF;
    IF 'leg_answered' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, answered_at)
        SELECT 'onlinepbx3', (x.fact).leg, x.call_id, (x.fact).at
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'leg_answered'
        ON CONFLICT (source, leg_uuid) DO UPDATE SET answered_at = coalesce(l.answered_at, EXCLUDED.answered_at);
    END IF;
    IF 'leg_ended' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, ended_at, hangup_cause)
        SELECT 'onlinepbx3', (x.fact).leg, x.call_id, (x.fact).at, (x.fact).cause
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'leg_ended'
        ON CONFLICT (source, leg_uuid) DO UPDATE
           SET ended_at = coalesce(l.ended_at, EXCLUDED.ended_at), hangup_cause = coalesce(l.hangup_cause, EXCLUDED.hangup_cause);
    END IF;
    IF 'leg_hold' = ANY (v_kinds) OR 'leg_unhold' = ANY (v_kinds) THEN
        INSERT INTO cti.call_leg AS l (source, leg_uuid, call_id, on_hold)
        SELECT 'onlinepbx3', (x.fact).leg, x.call_id, (x.fact).kind = 'leg_hold'
          FROM unnest(v_facts) x WHERE (x.fact).kind IN ('leg_hold', 'leg_unhold')
        ON CONFLICT (source, leg_uuid) DO UPDATE SET on_hold = EXCLUDED.on_hold;
        UPDATE cti.call c SET hold_count = c.hold_count + 1
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'leg_hold' AND c.id = x.call_id;
    END IF;
    IF 'bridged' = ANY (v_kinds) THEN
        INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
        SELECT x.call_id, least((x.fact).leg, (x.fact).other_leg), greatest((x.fact).leg, (x.fact).other_leg), (x.fact).at
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'bridged'
        ON CONFLICT DO NOTHING;
    END IF;
    IF 'call_ended' = ANY (v_kinds) THEN
        -- The PBX's own end time wins over the time the last leg's hangup reached us.
        UPDATE cti.call c SET pbx_ended = true, ended_at = (x.fact).at, hangup_cause = coalesce(c.hangup_cause, (x.fact).cause)
          FROM unnest(v_facts) x WHERE (x.fact).kind = 'call_ended' AND c.id = x.call_id;
    END IF;

    RETURN cti.refresh_calls(v_calls, v_ats, v_keys, true);
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
-- normaliser raises fails this whole function, and the caller goes frame by frame.
CREATE FUNCTION cti.process_in_rounds(p_events cti.raw_event[]) RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the note at the top
AS $$
DECLARE
    v_facts cti.frame_fact[];
    v_round cti.refresh_result;
    v_commands cti.keyed_command[] := '{}';
    v_lookup_keys bigint[] := '{}';
    v_registered boolean := false;
BEGIN
    IF EXISTS (SELECT FROM unnest(p_events) e WHERE e.parse_error IS NULL AND e.source <> 'onlinepbx3') THEN
        RETURN false;
    END IF;
    SELECT coalesce(array_agg(ROW(x.id, x.received_at, x.f, NULL,
                                  CASE WHEN (x.f).call_key IS NOT NULL THEN x.nth END)::cti.frame_fact ORDER BY x.id), '{}')
      INTO v_facts
      FROM (SELECT e.id, e.received_at, f, row_number() OVER (PARTITION BY f.call_key ORDER BY e.id) AS nth
              FROM unnest(p_events) e CROSS JOIN LATERAL cti.normalize_onlinepbx3(e.frame, e.received_at) f
             WHERE e.parse_error IS NULL) x;
    IF cardinality(v_facts) <> (SELECT count(*) FROM unnest(p_events) e WHERE e.parse_error IS NULL)
       OR EXISTS (SELECT FROM unnest(v_facts) x
                   WHERE (x.fact).kind NOT IN ('ignored', 'leg_created', 'leg_answered', 'leg_ended',
                                               'leg_hold', 'leg_unhold', 'bridged', 'call_ended'))
       -- A leg stays in one call, within the batch and with what is stored.
       OR EXISTS (SELECT FROM unnest(v_facts) x WHERE (x.fact).kind LIKE 'leg%'
                   GROUP BY (x.fact).leg HAVING count(DISTINCT (x.fact).call_key) > 1)
       OR EXISTS (SELECT FROM unnest(v_facts) x
                    JOIN cti.call_leg l ON l.source = 'onlinepbx3' AND l.leg_uuid = (x.fact).leg
                    JOIN cti.call c ON c.id = l.call_id
                   WHERE (x.fact).kind LIKE 'leg%' AND c.pbx_call_id <> (x.fact).call_key) THEN
        RETURN false;
    END IF;

    FOR r IN 1 .. coalesce((SELECT max(x.round) FROM unnest(v_facts) x), 0) LOOP
        v_round := cti.process_round(ARRAY(SELECT x FROM unnest(v_facts) x WHERE x.round = r ORDER BY x.raw_event_id));
        v_commands := v_commands || v_round.commands;
        v_lookup_keys := v_lookup_keys || v_round.lookup_keys;
        v_registered := v_registered OR v_round.registered;
    END LOOP;
    IF v_registered AND v_lookup_keys IS DISTINCT FROM ARRAY(SELECT k FROM unnest(v_lookup_keys) k ORDER BY k) THEN
        RAISE EXCEPTION 'client lookups ran out of frame order and one registered a number'
            USING ERRCODE = 'CTIR1', HINT = 'the batch is processed again frame by frame';
    END IF;
    PERFORM cti.send_commands(v_commands);

    INSERT INTO cti.event_outcome (raw_event_id, status, detail)
    SELECT e.id,
           CASE WHEN e.parse_error IS NOT NULL THEN 'failed' WHEN (x.fact).kind = 'ignored' THEN 'ignored'
                ELSE 'processed' END,
           CASE WHEN e.parse_error IS NOT NULL THEN e.parse_error WHEN (x.fact).kind = 'ignored' THEN (x.fact).note END
      FROM unnest(p_events) e LEFT JOIN unnest(v_facts) x ON x.raw_event_id = e.id
     ORDER BY e.id;
    RETURN true;
END
$$;

-- Each frame of a batch, one at a time, in order; raises when a frame fails.
CREATE FUNCTION cti.process_frame_by_frame(p_events cti.raw_event[]) RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event cti.raw_event;
    v_result record;
BEGIN
    FOREACH v_event IN ARRAY p_events LOOP
        v_result := cti.process_event(v_event, true);
        INSERT INTO cti.event_outcome (raw_event_id, status, detail) VALUES (v_event.id, v_result.status, v_result.detail);
    END LOOP;
END
$$;

-- The processing trigger: rounds for onlinePBX 3.0 batches, frame by frame otherwise (as
-- in 0014), and a subtransaction per frame only when a frame fails.
CREATE OR REPLACE FUNCTION cti.tg_raw_event__process() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER  -- runs as the owner: the ingester may insert raw events and nothing else
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_events cti.raw_event[];
    v_event cti.raw_event;
    v_try_rounds boolean := true;
BEGIN
    SELECT array_agg(ROW(e.*)::cti.raw_event ORDER BY e.id) INTO v_events FROM new_events e;
    -- Fast path: the whole batch in one subtransaction, in rounds when it can be.
    FOR v_attempt IN 1 .. 2 LOOP
        BEGIN
            IF v_try_rounds THEN
                v_try_rounds := cti.process_in_rounds(v_events);
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
