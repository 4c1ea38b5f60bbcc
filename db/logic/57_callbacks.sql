-- Callback tasks: a missed call is someone's job to call back.
--
-- Rules:
-- - An inbound call that ends missed, abandoned, busy or rejected, from a number we can dial back
--   (not withheld),
--   makes a callback task, or adds to the open task of the same party: the client, or for
--   a caller the CRM does not know (and did not register as a lead), the number. A lead
--   that is a record apart from the clients (record_kind 'lead') goes by its number too:
--   its id is of another id space. There is at most one open task per party.
-- - Its owner comes from cti.config.callback_owner_policy, tried in order: 'manager' (the
--   client's manager as crm_lookup gave it at ring time), 'line' (cti.crm_line_owner of the
--   line called), 'default' (cti.config.callback_default_owner). When none gives anyone,
--   the task has no owner (the analytics show such tasks).
-- - It is due cti.config.callback_due_after after the missed call ended.
-- - The owner gets a `callback_task` item in their notification stream when the task is
--   made, and again each time another missed call adds to it.
-- - It closes when anyone reaches the party: an answered outbound call to the client (at
--   any of its numbers: the call's client is the task's) or to the number, or the party's
--   next answered inbound call. It records that call, its extension and when it was answered.
-- - Tasks are derived from calls, in the same pass as the calls: rebuild makes the same
--   tasks again and sends nothing. A call that looked missed because its frames came out of
--   order, and is then answered, takes back the task it opened alone.

-- The party a task belongs to: the client when there is one, else the number.
CREATE OR REPLACE FUNCTION cti.callback_party(p_client_id bigint, p_e164 text) RETURNS text
LANGUAGE sql STABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN CASE WHEN p_client_id IS NOT NULL THEN 'client:' || p_client_id ELSE 'number:' || p_e164 END;

-- Who owns a new task for this missed call, and by which rule of the policy.
CREATE OR REPLACE FUNCTION cti.callback_owner(p_call cti.call, OUT owner_id bigint, OUT rule text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g cti.config;
BEGIN
    SELECT * INTO g FROM cti.config;
    FOREACH rule IN ARRAY g.callback_owner_policy LOOP
        owner_id := CASE rule WHEN 'manager' THEN (p_call.client_card ->> 'manager_id')::bigint
                              WHEN 'line' THEN cti.crm_line_owner(p_call.dialled)
                              WHEN 'default' THEN g.callback_default_owner END;
        IF owner_id IS NOT NULL THEN
            RETURN;
        END IF;
    END LOOP;
    rule := NULL;
END
$$;

-- What the owner's client shows: the task, and the client as the CRM knew them. Times are
-- left to cti.callback_tasks_v1(): a call's end time can still move when a late frame
-- brings the PBX's own (the task follows it).
CREATE OR REPLACE FUNCTION cti.callback_payload(p_task cti.callback_task, p_call cti.call) RETURNS jsonb
LANGUAGE sql STABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN jsonb_strip_nulls(jsonb_build_object(
        'task_id', p_task.id, 'number', p_task.e164, 'dialled', p_task.dialled,
        'missed_calls', p_task.missed_calls, 'client_id', p_task.client_id,
        'client_name', p_call.client_card ->> 'client_name', 'company', p_call.client_card ->> 'company',
        'is_new', p_call.client_match = 'new'));

-- Make, add to and close tasks for the calls of one derivation pass (55_derive_calls.sql),
-- in the pass's order. Returns the owners' `callback_task` items (none when p_live is false).
CREATE OR REPLACE FUNCTION cti.track_callbacks(p_steps cti.call_derivation[], p_keys bigint[], p_live boolean)
RETURNS cti.keyed_command[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_step cti.call_derivation;
    v_call cti.call;
    v_task cti.callback_task;
    v_owner record;
    v_items cti.keyed_command[] := '{}';
    v_key bigint;
    v_parties text[];
    v_client_id bigint;  -- the client of the party, NULL for a lead or an unknown number
    v_reached boolean;
    v_missed boolean;
BEGIN
    FOREACH v_step IN ARRAY p_steps LOOP
        v_call := v_step.after_state;
        CONTINUE WHEN v_call.external_number IS NULL OR cti.is_extension(v_call.external_number)
                      OR v_call.caller_withheld;  -- a number nobody may see is not dialled back
        v_reached := v_call.answered_at IS NOT NULL AND (v_step.before_state).answered_at IS NULL
                     AND v_call.direction IN ('inbound', 'outbound');
        v_missed := v_call.direction = 'inbound' AND v_call.outcome IN ('missed', 'abandoned', 'busy', 'rejected');

        -- The end of a call that opened a task can still move (the PBX's own time replacing
        -- the arrival of its last leg's end): the task follows. Order does not matter here.
        IF v_missed AND (v_step.before_state).outcome IS NOT NULL THEN
            UPDATE cti.callback_task t SET created_at = v_call.ended_at, due_at = v_call.ended_at + g.callback_due_after
              FROM cti.config g
             WHERE t.first_call_id = v_call.id AND t.created_at IS DISTINCT FROM v_call.ended_at;
        END IF;
        v_missed := v_missed AND (v_step.before_state).outcome IS NULL;  -- ended just now
        CONTINUE WHEN NOT (v_reached OR v_missed);

        v_key := p_keys[v_step.ord];
        -- A lead's id is not a client's: its tasks go by its number (see the header).
        v_client_id := CASE WHEN cti.client_kind(v_call) = 'client' THEN v_call.client_id END;
        v_parties := ARRAY[cti.callback_party(v_client_id, v_call.external_number),
                           cti.callback_party(NULL, v_call.external_number)];
        -- Tasks depend on the order of one party's calls. A batch in rounds hands its
        -- derivations here after its last round, sorted by frame (65_processing.sql); frame
        -- by frame, keys are 0 and frames in order anyway. This guards that order.
        IF v_key > 0 THEN
            IF EXISTS (SELECT FROM cti.callback_party_key k
                        WHERE k.party = ANY (v_parties) AND k.last_frame_key > v_key) THEN
                RAISE EXCEPTION 'callback tasks were reached out of frame order'
                    USING ERRCODE = 'CTIR1', HINT = 'the batch is processed again frame by frame';
            END IF;
            INSERT INTO cti.callback_party_key AS k (party, last_frame_key)
            SELECT DISTINCT p, v_key FROM unnest(v_parties) p
            ON CONFLICT (party) DO UPDATE SET last_frame_key = greatest(k.last_frame_key, EXCLUDED.last_frame_key);
        END IF;

        -- Reached: answered just now, either way. A task this very call opened alone goes:
        -- its frames came out of order, and it looked missed before its answer arrived.
        IF v_reached THEN
            DELETE FROM cti.callback_task t
             WHERE t.first_call_id = v_call.id AND t.last_call_id = v_call.id AND t.closed_at IS NULL;
            UPDATE cti.callback_task t
               SET closed_at = v_call.answered_at, closed_by_call_id = v_call.id,
                   closed_by_extension = v_call.answered_by, closed_how = v_call.direction || '_answered'
             WHERE t.closed_at IS NULL AND t.party = ANY (v_parties);
        END IF;

        -- Missed: ended just now without an answer.
        IF v_missed THEN
            SELECT * INTO v_owner FROM cti.callback_owner(v_call);
            INSERT INTO cti.callback_task AS t (party, client_id, e164, dialled, first_call_id, last_call_id,
                                                owner_id, owner_rule, created_at, due_at)
            SELECT v_parties[1], v_client_id,
                   v_call.external_number, v_call.dialled, v_call.id, v_call.id, v_owner.owner_id, v_owner.rule,
                   v_call.ended_at, v_call.ended_at + g.callback_due_after
              FROM cti.config g
            ON CONFLICT (party) WHERE closed_at IS NULL DO UPDATE
               SET missed_calls = t.missed_calls + 1, last_call_id = EXCLUDED.last_call_id, e164 = EXCLUDED.e164
            RETURNING * INTO v_task;
            IF p_live AND v_task.owner_id IS NOT NULL THEN
                v_items := v_items || ROW(v_key, 4, 1,
                                          ROW('emp', v_task.owner_id, 'callback_task', v_call.id,
                                              cti.callback_payload(v_task, v_call))::cti.command)::cti.keyed_command;
            END IF;
        END IF;
    END LOOP;
    RETURN v_items;
END
$$;

COMMENT ON FUNCTION cti.track_callbacks(cti.call_derivation[], bigint[], boolean) IS 'Make, add to and close callback tasks for the calls just derived; returns the owners'' callback_task items';
