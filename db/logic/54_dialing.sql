-- Click-to-call: a desk asks, the edge that holds the PBX link dials, at most once.
--
-- Rules:
-- - A desk (a client login bound to a workstation) dials from its own extension only:
--   cti.crm_extension_for_workstation gives it, and cti.crm_workstation_for_extension must
--   lead back to the same desk, or nothing is dialled (two adapters that disagree).
-- - The number is normalised with the phone rules; an internal extension may be dialled.
--   A second click on the same number while the first request is on its way returns the
--   first request; beyond cti.config.dial_requests_per_minute a desk is refused.
-- - A request is a row, then a doorbell (`cti_dial_v1`, the request's id only) for the edge.
-- - States: requested -> sent -> answered | failed; requested -> expired; sent -> unknown.
--   `sent` is committed by the edge's claim (cti.dial_claim_v1) *before* it sends anything,
--   so no two edges (nor one edge restarted) send a request twice. A request not taken
--   within dial_expire_after expires: nobody is called minutes later.
-- - Outcomes come back through the raw log, like every PBX fact: AMI OriginateResponse
--   (Success: the desk answered and the number is being dialled; Failure: the Reason code),
--   an AMI error answer to the Originate, onlinePBX 2.0's `callback` to a `make_call`, or the
--   edge's own `dial_response` frame (the PBX refused the request, or it could not be sent).
-- - A request sent with no outcome within dial_unknown_after is unknown: it may or may not
--   have rung. It is never dialled again; the call it placed, found later, still settles it.
-- - The call a request placed: on Asterisk the call whose id (Linkedid) is the request's id,
--   given as the Originate's ChannelId (exact); on onlinePBX, whose answer names no call,
--   the first outbound call within a minute of the send between the desk's extension and
--   the number (by number and time: a desk has one request per number on its way at a time;
--   the client's own inbound call, just missed at that desk, is not it).
-- - Outcomes only move forward: a final state is never changed, but unknown may still
--   become answered or failed when the evidence comes.
-- Why the claim is committed before the send, and what a failover does: docs/operations.md.

-- The call a request placed, with how sure the link is; NULL while none is seen.
CREATE OR REPLACE FUNCTION cti.dial_request_call(p_request cti.dial_request, OUT call_id bigint, OUT link text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    call_id := cti.call_of_key('asterisk', p_request.id::text);
    IF call_id IS NOT NULL THEN
        link := 'exact';
        RETURN;
    END IF;
    IF p_request.sent_at IS NULL THEN
        RETURN;
    END IF;
    SELECT c.id, 'by number and time' INTO call_id, link
      FROM cti.call c
     WHERE c.started_at BETWEEN p_request.sent_at - interval '5 seconds' AND p_request.sent_at + interval '1 minute'
       AND c.source IN ('onlinepbx3', 'onlinepbx2')
       AND c.direction IN ('outbound', 'internal')  -- not the client's own call just before
       AND coalesce(c.external_number, c.dialled) = p_request.number
       AND EXISTS (SELECT FROM cti.call_leg l WHERE l.call_id = c.id
                      AND p_request.extension IN (l.caller, l.destination))
     ORDER BY c.started_at, c.id
     LIMIT 1;
END
$$;

-- The request that placed a call (the same link, read from the call's side), for the
-- history and the commands; NULL for calls nobody asked for from the CRM.
CREATE OR REPLACE FUNCTION cti.dial_request_of_call(p_call cti.call) RETURNS uuid
LANGUAGE plpgsql STABLE
SECURITY DEFINER  -- call_history_v1's readers (cti_reader) read no request or leg themselves
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_call.direction NOT IN ('outbound', 'internal') THEN
        RETURN NULL;
    END IF;
    IF p_call.source = 'asterisk' THEN
        RETURN (SELECT r.id FROM cti.dial_request r
                 WHERE p_call.pbx_call_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                   AND r.id = p_call.pbx_call_id::uuid);
    END IF;
    RETURN (SELECT r.id FROM cti.dial_request r
             WHERE r.number = coalesce(p_call.external_number, p_call.dialled)
               AND r.sent_at BETWEEN p_call.started_at - interval '1 minute' AND p_call.started_at + interval '5 seconds'
               AND EXISTS (SELECT FROM cti.call_leg l WHERE l.call_id = p_call.id
                              AND r.extension IN (l.caller, l.destination))
             ORDER BY r.sent_at DESC LIMIT 1);
END
$$;

-- A desk's request to dial a number from its extension (for cti.dial_v1 by login, and the
-- gateway's by token); returns the request's id.
CREATE OR REPLACE FUNCTION cti.dial_for(p_binding cti.client_login, p_number text, p_client_id bigint) RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_binding cti.client_login := p_binding;
    v_cfg cti.config;
    v_extension text;
    v_number text;
    v_id uuid;
    v_recent int;
BEGIN
    IF v_binding.workstation_id IS NULL THEN
        RAISE EXCEPTION 'login "%" has no workstation: only a desk places calls', v_binding.login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_extension := cti.crm_extension_for_workstation(v_binding.workstation_id);
    IF v_extension IS NULL THEN
        RAISE EXCEPTION 'workstation % has no extension to dial from', v_binding.workstation_id
            USING HINT = 'cti.crm_extension_for_workstation() gives none for it (docs/dba-guide.md#click-to-call)',
                  ERRCODE = 'insufficient_privilege';
    END IF;
    IF cti.crm_workstation_for_extension(v_extension) IS DISTINCT FROM v_binding.workstation_id THEN
        RAISE EXCEPTION 'extension % is not at workstation % by cti.crm_workstation_for_extension(): nothing dialled',
                        v_extension, v_binding.workstation_id
            USING HINT = 'the two adapters must agree (docs/dba-guide.md#click-to-call)',
                  ERRCODE = 'insufficient_privilege';
    END IF;
    IF p_number IS NULL OR length(p_number) > 64 THEN
        RAISE EXCEPTION 'no number to dial%', CASE WHEN p_number IS NULL THEN '' ELSE ' (over 64 characters)' END
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_number := cti.normalize_phone(p_number);
    IF v_number IS NULL THEN
        RAISE EXCEPTION 'cannot dial %: not a phone number or an extension', quote_literal(p_number)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_number = v_extension THEN
        RAISE EXCEPTION 'cannot dial % : it is this desk''s own extension', v_number
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO v_cfg FROM cti.config;
    -- One desk's requests one at a time: the count and the insert cannot race.
    PERFORM pg_advisory_xact_lock(hashtextextended('cti.dial_request/' || v_binding.login, 0));
    SELECT r.id INTO v_id FROM cti.dial_request r
     WHERE r.login = v_binding.login AND r.number = v_number AND r.state IN ('requested', 'sent')
       AND r.requested_at > now() - v_cfg.dial_expire_after
     ORDER BY r.requested_at DESC LIMIT 1;
    IF FOUND THEN  -- a second click while the first is on its way: one call
        RETURN v_id;
    END IF;
    SELECT count(*) INTO v_recent FROM cti.dial_request r
     WHERE r.login = v_binding.login AND r.requested_at > now() - interval '1 minute';
    IF v_recent >= v_cfg.dial_requests_per_minute THEN
        RAISE EXCEPTION 'too many calls placed from this desk: % in the last minute (the limit is %)',
                        v_recent, v_cfg.dial_requests_per_minute
            USING HINT = 'wait a minute; a DBA sets the limit in cti.config.dial_requests_per_minute',
                  ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO cti.dial_request (login, workstation_id, extension, number, client_id, expires_at)
    VALUES (v_binding.login, v_binding.workstation_id, v_extension, v_number, p_client_id,
            now() + v_cfg.dial_expire_after)
    RETURNING id INTO v_id;
    PERFORM pg_notify('cti_dial_v1', v_id::text);  -- a doorbell for the edge: the id only
    RETURN v_id;
END
$$;

-- A login's recent requests and where each stands, with the call each placed.
CREATE OR REPLACE FUNCTION cti.dial_requests_of(p_login name, p_since interval)
RETURNS TABLE (request_id uuid, number text, client_id bigint, state text, reason text,
               requested_at timestamptz, sent_at timestamptz, decided_at timestamptz,
               call_id bigint, call_link text, call_outcome text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.id, r.number, r.client_id, r.state, r.reason, r.requested_at, r.sent_at, r.decided_at,
           k.call_id, k.link, c.outcome
      FROM cti.dial_request r
      CROSS JOIN LATERAL cti.dial_request_call(r) k
      LEFT JOIN cti.call c ON c.id = k.call_id
     WHERE r.login = p_login AND r.requested_at > now() - p_since
     ORDER BY r.requested_at DESC
     LIMIT 200
$$;

-- Settle one request from the PBX's answer; forward only (see the header). Returns a note.
CREATE OR REPLACE FUNCTION cti.settle_dial_request(p_id uuid, p_state text, p_reason text, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    UPDATE cti.dial_request SET state = p_state, reason = p_reason, decided_at = p_at
     WHERE id = p_id AND state IN ('sent', 'unknown');
    IF FOUND THEN
        RETURN format('dial request %s %s', p_id, p_state);
    END IF;
    RETURN format('dial request %s: %s', p_id,
                  coalesce('already ' || (SELECT state FROM cti.dial_request WHERE id = p_id), 'no such request'));
END
$$;

-- Edge API v1 (cti_dialer): take up to p_limit waiting requests to send, marked sent by
-- p_edge and committed with the caller's transaction, before anything is sent.
CREATE OR REPLACE FUNCTION cti.dial_claim_v1(p_edge text, p_limit int DEFAULT 10)
RETURNS TABLE (request_id uuid, extension text, number text, display_name text, expires_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    -- Roles are cluster-wide: only an ingester registered in this database (or a DBA), as
    -- for raw events (65_processing.sql).
    IF NOT EXISTS (SELECT FROM cti.ingester_login WHERE login = session_user)
       AND NOT pg_has_role(session_user, 'cti_owner', 'MEMBER')
       AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user) THEN
        RAISE EXCEPTION 'login "%" is not an ingester of database %', session_user, current_database()
            USING HINT = format('register it here: INSERT INTO cti.ingester_login (login) VALUES (%L)', session_user),
                  ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE cti.dial_request r SET state = 'expired', decided_at = now(),
           reason = 'no edge took it within cti.config.dial_expire_after'
     WHERE r.state = 'requested' AND r.expires_at <= now();
    RETURN QUERY
    WITH taken AS (
        UPDATE cti.dial_request r SET state = 'sent', sent_at = now(), sent_by = left(p_edge, 200)
         WHERE r.id IN (SELECT w.id FROM cti.dial_request w
                         WHERE w.state = 'requested' AND w.expires_at > now()
                         ORDER BY w.requested_at
                         LIMIT least(greatest(coalesce(p_limit, 10), 1), 100)
                         FOR UPDATE SKIP LOCKED)
        RETURNING r.id, r.extension, r.number, r.expires_at, r.requested_at)
    SELECT t.id, t.extension, t.number,
           -- what the desk's phone shows while it rings: the client, when one is known
           (SELECT CASE WHEN count(*) = 1 THEN min(l.client_name) END FROM cti.crm_lookup(t.number) l),
           t.expires_at
      FROM taken t ORDER BY t.requested_at;
END
$$;

COMMENT ON FUNCTION cti.dial_claim_v1(text, int) IS 'Edge API v1: claim waiting dial requests (state sent, committed before the edge sends them)';

-- AMI: an Originate's outcome (OriginateResponse) or its refusal (Response: Error), by the
-- ActionID pgcti gives it (pgcti-dial-<request id>). NULL for any other block.
CREATE OR REPLACE FUNCTION cti.dial_outcome_from_ami(p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fields jsonb := cti.ami_fields(p_frame);
    v_id text := substring(v_fields ->> 'ActionID' FROM '^pgcti-dial-([0-9a-f-]{36})$');
BEGIN
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_frame ->> 'Event' = 'OriginateResponse' AND v_fields ->> 'Response' = 'Success' THEN
        RETURN cti.settle_dial_request(v_id::uuid, 'answered', NULL, p_at);
    ELSIF p_frame ->> 'Event' IS NULL AND v_fields ->> 'Response' = 'Success' THEN
        RETURN format('dial request %s accepted by the PBX', v_id);  -- queued: the outcome comes later
    END IF;
    -- Reason: the last control frame the desk's channel got (Asterisk's AST_CONTROL_*).
    RETURN cti.settle_dial_request(v_id::uuid, 'failed',
        CASE WHEN p_frame ->> 'Event' = 'OriginateResponse' THEN
            CASE v_fields ->> 'Reason'
                WHEN '0' THEN 'the desk''s phone could not be called (not registered, or no such device)'
                WHEN '1' THEN 'the desk hung up'
                WHEN '3' THEN 'the desk did not answer'
                WHEN '5' THEN 'the desk was busy'
                WHEN '8' THEN 'congestion: the PBX could not place the call'
                ELSE 'the PBX could not place the call (reason ' || coalesce(v_fields ->> 'Reason', 'none') || ')' END
        ELSE 'the PBX refused the request: ' || left(coalesce(v_fields ->> 'Message', 'no reason given'), 200) END,
        p_at);
END
$$;

-- onlinePBX API 2.0: the `callback` event answering a `make_call`, by the callback_hash pgcti
-- gives it (pgcti-dial-<request id>); NULL for any other event. The answer's fields are not
-- documented publicly: a `status` of 0 or false, or an `error`, is a refusal (its `comment`,
-- `message` or `error` the reason); anything else is an acceptance, and the call placed,
-- found by number and time as for call/now, settles the request.
CREATE OR REPLACE FUNCTION cti.dial_outcome_from_onlinepbx2(p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_answer jsonb := p_frame -> 'args' -> 0;
    v_id text;
BEGIN
    IF p_frame ->> 'name' IS DISTINCT FROM 'callback' OR jsonb_typeof(v_answer) IS DISTINCT FROM 'object' THEN
        RETURN NULL;
    END IF;
    v_id := substring(v_answer ->> 'hash' FROM '^pgcti-dial-([0-9a-f-]{36})$');
    IF v_id IS NULL THEN
        RETURN NULL;
    END IF;
    IF lower(v_answer ->> 'status') IN ('0', 'false', 'error') OR v_answer ? 'error' THEN
        RETURN cti.settle_dial_request(v_id::uuid, 'failed', 'the PBX refused the request: '
            || left(coalesce(v_answer ->> 'comment', v_answer ->> 'message', v_answer ->> 'error',
                             'no reason given'), 200), p_at);
    END IF;
    RETURN format('dial request %s accepted by the PBX', v_id);
END
$$;

-- The edge's own report on a request ({"event": "dial_response", "request": id, "sent":
-- bool, "ok": bool, "reason": text}): not sent at all, or refused by the PBX's API.
CREATE OR REPLACE FUNCTION cti.dial_outcome_from_edge(p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id uuid := cti.required_field(p_frame, 'request', 'dial_response', 'frame')::uuid;
    v_reason text := left(coalesce(p_frame ->> 'reason', 'no reason given'), 200);
BEGIN
    IF (p_frame ->> 'sent')::boolean IS FALSE THEN
        RETURN cti.settle_dial_request(v_id, 'failed', 'not sent: ' || v_reason, p_at);
    ELSIF (p_frame ->> 'ok')::boolean IS FALSE THEN
        RETURN cti.settle_dial_request(v_id, 'failed', 'the PBX refused the request: ' || v_reason, p_at);
    END IF;
    RETURN format('dial request %s accepted by the PBX', v_id);
END
$$;

-- Housekeeping at each tick: requests nobody took expire; a request sent long enough ago
-- without an answer is settled by the call it placed, else marked unknown.
CREATE OR REPLACE FUNCTION cti.settle_dial_requests(p_at timestamptz) RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg cti.config;
    v_count int;
    v_more int;
BEGIN
    SELECT * INTO v_cfg FROM cti.config;
    UPDATE cti.dial_request SET state = 'expired', decided_at = p_at,
           reason = 'no edge took it within cti.config.dial_expire_after'
     WHERE state = 'requested' AND expires_at <= p_at;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    WITH judged AS (
        SELECT r.id, k.call_id, r.sent_at,
               -- the desk's leg answered, or a leg comes from the desk: the number is dialled
               -- only once the desk has answered (onlinePBX shows the desk as its caller)
               EXISTS (SELECT FROM cti.call_leg l WHERE l.call_id = k.call_id
                          AND (l.destination = r.extension AND l.answered_at IS NOT NULL
                               OR l.caller = r.extension)) AS desk_answered,
               (SELECT c.ended_at IS NOT NULL FROM cti.call c WHERE c.id = k.call_id) AS ended
          FROM cti.dial_request r CROSS JOIN LATERAL cti.dial_request_call(r) k
         WHERE r.state IN ('sent', 'unknown'))
    UPDATE cti.dial_request r
       SET state = CASE WHEN j.desk_answered THEN 'answered'
                        WHEN j.ended THEN 'failed'
                        ELSE 'unknown' END,
           reason = CASE WHEN j.desk_answered THEN NULL
                         WHEN j.ended THEN 'the desk did not answer'
                         ELSE 'no answer from the PBX within cti.config.dial_unknown_after: '
                              'the call may or may not have been placed; it is not dialled again' END,
           decided_at = p_at
      FROM judged j
     WHERE r.id = j.id
       AND (j.desk_answered OR j.ended
            OR (r.state = 'sent' AND j.sent_at <= p_at - v_cfg.dial_unknown_after));
    GET DIAGNOSTICS v_more = ROW_COUNT;
    RETURN v_count + v_more;
END
$$;
