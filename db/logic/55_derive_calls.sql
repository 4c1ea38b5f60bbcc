-- Deriving calls, and the commands that follow from what changed.
--
-- Rules (all in cti.derive_calls(), which works on a set of calls at once):
-- - Derived from the stored facts only, so the result does not depend on the order the
--   frames arrived in. Commands are emitted for changes of the derived state, so a repeated
--   or late frame sends nothing twice.
-- - Direction: a leg whose caller is not one of our extensions (anonymous included) means a
--   customer called in; an extension calling a non-extension is outbound.
-- - Dialled: inbound, the company's line the customer called; outbound, the number
--   dialled out (a dialled leg's before what was typed where the call started); internal,
--   the extension dialled.
-- - A call two of whose legs talked (a bridge) is answered, even when no extension can be
--   named as the one that answered.
-- - First answer wins: inbound, the call is answered by the first extension leg to answer
--   that is not a consultation between colleagues (ring-all and hunt groups); outbound, by
--   the extension that dialled, once the far end answered.
-- - Who holds the call, in order: the first to answer, then each new extension bridged to
--   the customer; the transfers are the steps of that chain (101 -> 102 -> 103).
-- - Abandoned: the customer hung up while it rang (the ringing legs were cancelled). A
--   queue that lets its caller go without an abandon (a timeout, a key) is not the caller
--   giving up: unanswered, the call is missed.
-- - Ended when the PBX says so, or when every leg we know of has hung up, or when one of
--   our devices that talked is the last party left (its own hangup may never come).
-- - A withheld number (the customer's leg says so) is shown to no one: not on cards, in
--   notifications or in history; it is looked up only if cti.config.lookup_withheld_numbers,
--   and never registered as a lead.
-- - The client is looked up once per call, as soon as the customer's number is known; an
--   unknown number is registered once (identify_client()), even when two calls from it
--   arrive at the same moment on two connections. A number the CRM knows as a lead (its
--   crm_lookup says record_kind 'lead') is found, not registered again.
-- - Ring: every recipient hears about a customer's call once, while it rings.
-- - The card: open at the holder's workstation while the call lasts; on transfer it is
--   closed at the old workstation first, then opened at the new one; `call_ended` goes where
--   it is open when the call ends.
-- - p_live = false (rebuild) updates the state and emits nothing.
-- derive_calls() returns the commands; the caller sends them (60_outbox.sql) in frame order.
-- plan_cache_mode is pinned for the reason given in 50_call_facts.sql.

-- Find the caller in the CRM once per call; register an unknown number exactly once,
-- even when two calls from it arrive at the same moment on two connections.
CREATE OR REPLACE FUNCTION cti.identify_client(p_call cti.call, p_register boolean)
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
                    IF client_id IS NULL THEN  -- the CRM chose not to register it
                        client_match := 'none';
                    ELSE
                        INSERT INTO cti.registered_number (e164, client_id, call_id)
                        VALUES (p_call.external_number, client_id, p_call.id)
                        ON CONFLICT (e164) DO UPDATE SET client_id = EXCLUDED.client_id, call_id = EXCLUDED.call_id;
                        client_match := 'new';
                    END IF;
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

-- Which kind of CRM record the call's client_id is: 'client' (the default), or what
-- crm_lookup said in its optional record_kind column ('lead' for a CRM whose leads are
-- records apart from its clients, as Odoo's crm_lead beside res_partner). NULL: no record.
CREATE OR REPLACE FUNCTION cti.client_kind(p_call cti.call) RETURNS text
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller
RETURN CASE WHEN p_call.client_id IS NOT NULL THEN coalesce(p_call.client_card ->> 'record_kind', 'client') END;

-- The card / notification body a client shows: ids, the number and the client as looked up;
-- a withheld number is not in it ("withheld": true instead).
CREATE OR REPLACE FUNCTION cti.call_payload(p_call cti.call) RETURNS jsonb
LANGUAGE sql STABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN jsonb_strip_nulls(jsonb_build_object(
        'call_id', p_call.id, 'direction', p_call.direction,
        'number', CASE WHEN NOT p_call.caller_withheld THEN coalesce(p_call.external_number, p_call.external_number_raw) END,
        'withheld', CASE WHEN p_call.caller_withheld THEN true END,
        'dialled', p_call.dialled,
        'client_id', p_call.client_id, 'record_kind', cti.client_kind(p_call),
        'match', p_call.client_match, 'is_new', p_call.client_match = 'new',
        'client_name', p_call.client_card ->> 'client_name', 'company', p_call.client_card ->> 'company',
        'manager_id', (p_call.client_card ->> 'manager_id')::bigint,
        'manager_surname', p_call.client_card ->> 'manager_surname',
        'candidates', p_call.client_card -> 'candidates',
        'extension', p_call.holder_extension,
        -- placed from the CRM (54_dialing.sql): the desk that asked already shows the card
        'dial_request', CASE WHEN p_call.direction IN ('outbound', 'internal') THEN cti.dial_request_of_call(p_call) END));

-- Derive a set of distinct calls from their stored facts and say what changed (ring,
-- open_card, close_card, call_ended) as commands for the caller to send; p_ats[i] is when
-- the frame that touched p_calls[i] arrived, p_keys[i] that frame's place (commands are
-- keyed by it). Clients are looked up in array order. p_live = false returns no commands.
-- The caller has locked the calls (cti.lock_calls()), so no two transactions derive one call.
-- The rules are in this file's header and in docs/architecture.md.
CREATE OR REPLACE FUNCTION cti.derive_calls(p_calls bigint[], p_ats timestamptz[], p_keys bigint[], p_live boolean)
RETURNS cti.derivation_result
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan  -- see the header
SET enable_memoize = off  -- the calls are distinct: a cache of a call's legs never hits, and cost 6% to set up
AS $$
DECLARE
    v_steps cti.call_derivation[];
    v_step cti.call_derivation;
    v_call cti.call;
    v_result cti.derivation_result := ROW('{}', '{}', false, '{}', '{}');
    v_any_lookup boolean;    -- what the set needs beyond the update: statements for nothing are skipped
    v_any_transfer boolean;
    v_any_command boolean;
BEGIN
    SELECT array_agg(ROW(i.ord, o, n.after_state, ch.chain, ch.chain_at,
                         d.transfers IS DISTINCT FROM coalesce(ch.chain[2:], '{}'),
                         NOT o.ring_notified AND coalesce(dir.direction = 'inbound' AND en.ended_at IS NULL, false),
                         o.client_match IS NULL AND dir.external_number IS NOT NULL
                             AND NOT cti.is_extension(dir.external_number))::cti.call_derivation ORDER BY i.ord),
           bool_or(o.client_match IS NULL AND dir.external_number IS NOT NULL
                   AND NOT cti.is_extension(dir.external_number)),
           bool_or(d.transfers IS DISTINCT FROM coalesce(ch.chain[2:], '{}')),
           bool_or(NOT o.ring_notified AND coalesce(dir.direction = 'inbound' AND en.ended_at IS NULL, false)
                   OR ws.workstation IS DISTINCT FROM o.card_workstation_id)
      INTO v_steps, v_any_lookup, v_any_transfer, v_any_command
      FROM unnest(p_calls, p_ats) WITH ORDINALITY AS i(call_id, at, ord)
     -- Found by id, read by ctid (locked above, so it stays put): keyed, see 50_call_facts.sql.
     CROSS JOIN LATERAL (SELECT ctid AS row_at FROM cti.call WHERE id = i.call_id OFFSET 0) r
      JOIN cti.call o ON o.ctid = r.row_at
     -- What the call's legs say, in one pass over them: each "first leg that ..." is the head
     -- of that leg's list in the order named. (One subquery per question cost an executor
     -- node each: about 200 for one call, most of a lone frame's derivation.)
     CROSS JOIN LATERAL (
        SELECT (a.inbound[1]).caller AS in_number, (a.inbound[1]).caller_raw AS in_number_raw,
               coalesce((a.inbound[1]).caller_withheld, false) AS in_withheld,
               a.inbound IS NOT NULL AS is_inbound, a.in_dialled[1] AS in_dialled,
               (a.outbound[1]).destination AS out_number, (a.outbound[1]).destination_raw AS out_number_raw,
               a.outbound IS NOT NULL AS is_outbound, coalesce(a.any_created, false) AS is_internal,
               a.started_at, a.int_dialled,
               a.in_answered_at, a.in_answered_by[1] AS in_answered_by,
               a.out_answered_at, a.out_answered_by[1] AS out_answered_by,
               a.int_answered_at, a.int_answered_by[1] AS int_answered_by,
               br.extensions AS bridged, br.times AS bridged_at,
               coalesce(a.all_ended, true) OR a.alone AS all_legs_ended, a.last_leg_ended,
               coalesce(a.busy, false) AS busy, coalesce(a.rejected, false) AS rejected,
               coalesce(a.cancelled, false) AS cancelled,
               a.leg_cause[1] AS leg_cause, tr.transfers,
               EXISTS (SELECT FROM cti.call_bridge b WHERE b.call_id = o.id) AS talked
          FROM (
            SELECT
                -- The customer's leg: a leg whose caller is not one of our extensions (anonymous included).
                array_agg(l ORDER BY l.created_at, l.leg_uuid)
                    FILTER (WHERE l.created_at IS NOT NULL AND NOT l.caller_is_extension) AS inbound,
                array_agg(l.destination_raw ORDER BY l.created_at, l.leg_uuid)
                    FILTER (WHERE l.created_at IS NOT NULL AND NOT l.caller_is_extension
                              AND NOT l.destination_is_extension) AS in_dialled,
                -- Outbound: an extension's leg dialling a number that is not ours.
                -- A dialled leg's number before the one typed on the leg that started the
                -- call (on Asterisk: its Exten, with a line prefix such as 9 in it).
                array_agg(l ORDER BY l.leg_uuid = o.pbx_call_id, l.created_at, l.leg_uuid)
                    FILTER (WHERE l.created_at IS NOT NULL AND l.destination IS NOT NULL
                              AND NOT l.destination_is_extension) AS outbound,
                (array_agg(l.destination_raw ORDER BY l.leg_uuid = o.pbx_call_id, l.created_at, l.leg_uuid)
                    FILTER (WHERE l.created_at IS NOT NULL AND l.destination_raw IS NOT NULL))[1] AS int_dialled,
                bool_or(l.created_at IS NOT NULL) AS any_created,
                min(l.created_at) AS started_at,
                -- Who answered. Inbound: the first extension leg to answer that is not a
                -- consultation between colleagues (ring-all and hunt groups: first answer wins).
                min(l.answered_at) FILTER (WHERE l.answered_at IS NOT NULL AND l.destination_is_extension
                                             AND NOT l.caller_is_extension) AS in_answered_at,
                array_agg(l.destination ORDER BY l.answered_at, l.leg_uuid)
                    FILTER (WHERE l.answered_at IS NOT NULL AND l.destination_is_extension
                              AND NOT l.caller_is_extension) AS in_answered_by,
                -- Outbound: the extension that dialled, once the far end answered.
                min(l.answered_at) FILTER (WHERE l.answered_at IS NOT NULL AND l.destination IS NOT NULL
                                             AND NOT l.destination_is_extension AND l.caller_is_extension)
                    AS out_answered_at,
                array_agg(l.caller ORDER BY l.answered_at, l.leg_uuid)
                    FILTER (WHERE l.answered_at IS NOT NULL AND l.destination IS NOT NULL
                              AND NOT l.destination_is_extension AND l.caller_is_extension) AS out_answered_by,
                -- Internal: recorded for history; internal calls pop no card.
                min(l.answered_at) AS int_answered_at,
                array_agg(l.destination ORDER BY l.answered_at, l.leg_uuid)
                    FILTER (WHERE l.answered_at IS NOT NULL) AS int_answered_by,
                bool_and(l.ended_at IS NOT NULL) AS all_ended,
                -- The last party left: one of our devices, answered, still up, when every
                -- other leg has hung up and it talked to one of them. Its own Hangup may
                -- never come (a filtered manager user, a lost event): the call is over.
                count(*) FILTER (WHERE l.ended_at IS NULL) = 1
                    AND bool_or(l.ended_at IS NULL AND l.answered_at IS NOT NULL
                                AND (l.destination_is_extension OR (l.caller_is_extension AND l.leg_uuid = o.pbx_call_id))
                                AND EXISTS (SELECT FROM cti.call_bridge b
                                             WHERE b.call_id = o.id AND l.leg_uuid IN (b.leg_a, b.leg_b))) AS alone,
                max(l.ended_at) AS last_leg_ended,
                bool_or(l.hangup_cause = 'USER_BUSY') AS busy,
                bool_or(l.hangup_cause = 'CALL_REJECTED') AS rejected,  -- a phone refused it
                -- the customer hung up while it rang: the PBX cancels the ringing legs. Not
                -- so a queue's members when the queue let the caller go without an abandon
                -- (a timeout, a key): the caller did not give up, the call goes on elsewhere.
                bool_or(l.hangup_cause = 'ORIGINATOR_CANCEL'
                        AND NOT EXISTS (SELECT FROM cti.queue_attempt qa
                                          JOIN cti.queue_call q ON (q.source, q.caller_leg, q.queue) = (qa.source, qa.caller_leg, qa.queue)
                                         WHERE qa.source = o.source AND qa.agent_leg = l.leg_uuid
                                           AND q.left_at IS NOT NULL AND q.abandoned_at IS NULL)) AS cancelled,
                array_agg(l.hangup_cause ORDER BY l.ended_at DESC NULLS LAST, l.leg_uuid)
                    FILTER (WHERE l.hangup_cause IS NOT NULL) AS leg_cause
              FROM cti.call_leg l WHERE l.call_id = o.id
          ) a
          -- Every extension leg bridged to the customer's side (a leg not dialling one of our
          -- extensions), ordered by when it answered (the PBX's clock; a bridge event has no
          -- time of its own and its arrival order is not to be trusted).
          CROSS JOIN LATERAL (
            SELECT coalesce(array_agg(x.destination ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS extensions,
                   coalesce(array_agg(coalesce(x.answered_at, b.bridged_at)
                                      ORDER BY coalesce(x.answered_at, b.bridged_at), x.leg_uuid), '{}') AS times
              FROM cti.call_bridge b
              JOIN cti.call_leg x ON x.call_id = o.id AND x.leg_uuid IN (b.leg_a, b.leg_b)
              JOIN cti.call_leg y ON y.call_id = o.id AND y.leg_uuid IN (b.leg_a, b.leg_b) AND y.leg_uuid <> x.leg_uuid
             WHERE b.call_id = o.id AND x.destination_is_extension
               AND y.destination IS NOT NULL AND NOT y.destination_is_extension
          ) br
          CROSS JOIN LATERAL (
            SELECT coalesce(array_agg(t.to_extension ORDER BY t.step), '{}') AS transfers
              FROM cti.call_transfer t WHERE t.call_id = o.id
          ) tr
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
               CASE WHEN d.is_inbound THEN d.in_dialled WHEN d.is_outbound THEN d.out_number_raw
                    WHEN d.is_internal THEN d.int_dialled ELSE o.dialled END AS dialled
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
     CROSS JOIN LATERAL (  -- OFFSET 0: the adapter is asked once, not once per use below
        SELECT CASE WHEN wc.wants_card THEN cti.crm_workstation_for_extension(en.holder) END AS workstation
        OFFSET 0
     ) ws
     CROSS JOIN LATERAL (
        SELECT jsonb_populate_record(o, jsonb_build_object(
            'direction', dir.direction, 'external_number', dir.external_number,
            'caller_withheld', CASE WHEN d.is_inbound THEN d.in_withheld ELSE o.caller_withheld END,
            'external_number_raw', dir.external_number_raw, 'dialled', dir.dialled,
            'started_at', d.started_at, 'last_event_at', greatest(o.last_event_at, i.at),
            'answered_at', ans.answered_at, 'answered_by', ans.answered_by, 'holder_extension', en.holder,
            'ended_at', en.ended_at,
            'outcome', CASE WHEN NOT en.ending THEN o.outcome
                            WHEN ans.answered_by IS NOT NULL THEN 'answered'
                            -- two of its legs talked: answered, whoever it was (never missed)
                            WHEN d.talked THEN 'answered'
                            WHEN d.rejected THEN 'rejected'
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
    -- A withheld number is looked up only where cti.config says so, and never registered.
    FOR i IN 1 .. CASE WHEN v_any_lookup THEN cardinality(v_steps) ELSE 0 END LOOP
        v_step := v_steps[i];
        IF v_step.needs_client THEN
            v_call := v_step.after_state;
            IF v_call.caller_withheld AND NOT (SELECT g.lookup_withheld_numbers FROM cti.config g) THEN
                v_call.client_match := 'none';
            ELSE
                SELECT c.client_id, c.client_match, c.candidates, c.card
                  INTO v_call.client_id, v_call.client_match, v_call.client_candidates, v_call.client_card
                  FROM cti.identify_client(v_call, v_call.direction = 'inbound' AND NOT v_call.caller_withheld) c;
            END IF;
            v_step.after_state := v_call;
            v_steps[i] := v_step;
            v_result.lookup_keys := v_result.lookup_keys || p_keys[v_step.ord];
            v_result.registered := v_result.registered OR v_call.client_match = 'new';
        END IF;
    END LOOP;

    -- The transfers are the steps of the chain: 101 -> 102 -> 103.
    IF v_any_transfer THEN
        DELETE FROM cti.call_transfer t
         WHERE t.call_id = ANY (ARRAY(SELECT (s.after_state).id FROM unnest(v_steps) s WHERE s.transfers_differ));
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
        routing_note = (s.after_state).routing_note, caller_withheld = (s.after_state).caller_withheld
      -- Each row found by its id, then updated by its ctid (the row is locked, so the ctid
      -- stays put): a join on id was planned as a scan of the table (50_call_facts.sql).
      FROM (SELECT s.after_state, k.ctid AS row_at FROM unnest(v_steps) s
             CROSS JOIN LATERAL (SELECT ctid FROM cti.call WHERE id = (s.after_state).id OFFSET 0) k
             WHERE s.after_state IS DISTINCT FROM s.before_state) s
     WHERE c.ctid = s.row_at;

    -- Callback tasks follow calls answered just now, and missed ones (57_callbacks.sql).
    -- Frame by frame (keys 0) they are tracked now; a round of a batch hands them back, and
    -- they are tracked after its last round, in frame order (cti.process_in_rounds).
    SELECT coalesce(array_agg(s ORDER BY s.ord), '{}'), coalesce(array_agg(p_keys[s.ord] ORDER BY s.ord), '{}')
      INTO v_result.callback_steps, v_result.callback_keys
      FROM unnest(v_steps) s
     WHERE ((s.after_state).answered_at IS NOT NULL AND (s.before_state).answered_at IS NULL)
        OR (s.after_state).outcome IN ('missed', 'abandoned', 'busy', 'rejected');
    IF cardinality(v_result.callback_steps) > 0 AND p_keys[1] = 0 THEN
        v_result.commands := v_result.commands || cti.track_callbacks(v_steps, p_keys, p_live);
        v_result.callback_steps := '{}';
        v_result.callback_keys := '{}';
    END IF;
    RETURN v_result;
END
$$;

COMMENT ON FUNCTION cti.derive_calls(bigint[], timestamptz[], bigint[], boolean) IS 'Derive a set of calls from their facts; returns the commands that follow from what changed (none when p_live=false)';

