-- Call recordings: a reference with each call, and who may listen.
--
-- Rules:
-- - Asterisk names a recording when MixMonitor starts: `VarSet MIXMONITOR_FILENAME` on the
--   recording channel (FreePBX: ${MIXMON_DIR}${YEAR}/${MONTH}/${DAY}/${CALLFILENAME}.${MIXMON_FORMAT}).
--   The reference is the PBX's file name, the call (Linkedid) and the channel; never a URL.
-- - Where VarSet events are filtered out (many sites drop them all), the `Newexten` that runs
--   MixMonitor names it: the first argument of its AppData, relative to the PBX's monitor
--   folder unless absolute. The VarSet that follows gives the final name and takes its place.
-- - The file is complete once that channel hangs up, or at `MixMonitorStop` (which comes
--   only on StopMixMonitor): ready_at. A recording not ready is not played.
-- - Who may listen (cti.may_hear): a desk to calls whose card it was sent (it was on the
--   call), and its employee to the calls of clients it manages; a supervisor token to all.
--   Every request is logged, allowed or not, with who and why (cti.recording_play).
-- - References older than cti.config.recordings_keep are deleted at the tick, and never
--   played: the PBX deletes its files by a rule of its own, which the docs tell how to match.
-- - onlinePBX (API 3.0) keeps a call's recording under the call's uuid: the reference is
--   the call itself (cti.call: source, pbx_call_id), ready once an answered call ended. Its
--   HTTP API gives a short-lived signed link to the file, which the gateway asks for when
--   a person wants to listen, never in advance; whether the PBX recorded the call only it
--   knows (the gateway says so when it has none). 2.0's events name no call uuid.
-- - A rebuild makes the references again from the raw log; the play log stays.
-- Why a reference and not a link: a signed URL expires.

-- AMI: a recording named, stopped, or its channel gone; NULL for any other block.
CREATE OR REPLACE FUNCTION cti.recording_from_ami(p_source text, p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'Event';
    v jsonb;
    v_file text;
BEGIN
    IF v_event IS NULL OR v_event NOT IN ('VarSet', 'Newexten', 'MixMonitorStop', 'Hangup') THEN
        RETURN NULL;
    END IF;
    IF v_event = 'Newexten' THEN
        v := cti.ami_fields(p_frame);
        v_file := btrim(split_part(v ->> 'AppData', ',', 1));
        IF lower(v ->> 'Application') IS DISTINCT FROM 'mixmonitor' OR coalesce(v_file, '') = '' THEN
            RETURN NULL;  -- another step of the dialplan, or a MixMonitor of separate legs only
        END IF;
        -- Named already (its VarSet came first): the same file, by its full name.
        IF EXISTS (SELECT FROM cti.recording r
                    WHERE r.source = p_source AND r.channel_leg = v ->> 'Uniqueid'
                      AND (r.file = v_file OR right(r.file, length(v_file) + 1) = '/' || v_file)) THEN
            RETURN NULL;
        END IF;
        INSERT INTO cti.recording (source, call_key, file, channel_leg, started_at)
        VALUES (p_source, cti.required_field(v, 'Linkedid', v_event, 'AMI'), left(v_file, 1000),
                v ->> 'Uniqueid', cti.pbx_time(v -> 'Timestamp', p_at))
        ON CONFLICT DO NOTHING;
        RETURN 'recording named';
    END IF;
    -- Every call's hangups come here: with no recording waiting for its end (an index probe),
    -- the block is not parsed again.
    IF v_event <> 'VarSet' AND NOT EXISTS (SELECT FROM cti.recording r WHERE r.source = p_source AND r.ready_at IS NULL) THEN
        RETURN NULL;
    END IF;
    v := cti.ami_fields(p_frame);
    IF v_event = 'VarSet' THEN
        IF v ->> 'Variable' IS DISTINCT FROM 'MIXMONITOR_FILENAME' OR coalesce(v ->> 'Value', '') = '' THEN
            RETURN NULL;
        END IF;
        -- The name its Newexten gave, now final: the full name takes its place.
        DELETE FROM cti.recording r
         WHERE r.source = p_source AND r.channel_leg = v ->> 'Uniqueid' AND r.ready_at IS NULL
           AND r.file <> v ->> 'Value' AND right(v ->> 'Value', length(r.file) + 1) = '/' || r.file;
        INSERT INTO cti.recording (source, call_key, file, channel_leg, started_at)
        VALUES (p_source, cti.required_field(v, 'Linkedid', v_event, 'AMI'), left(v ->> 'Value', 1000),
                v ->> 'Uniqueid', cti.pbx_time(v -> 'Timestamp', p_at))
        ON CONFLICT DO NOTHING;
        RETURN 'recording named';
    END IF;
    UPDATE cti.recording r SET ready_at = cti.pbx_time(v -> 'Timestamp', p_at)
     WHERE r.source = p_source AND r.channel_leg = v ->> 'Uniqueid' AND r.ready_at IS NULL;
    RETURN CASE WHEN FOUND THEN 'recording complete' END;
END
$$;

-- May this binding (a desk; NULL with p_supervisor) hear this call's recordings? A reason.
CREATE OR REPLACE FUNCTION cti.may_hear(p_binding cti.client_login, p_supervisor boolean, p_call cti.call,
                                        OUT allowed boolean, OUT why text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_call.id IS NULL THEN
        allowed := false; why := 'no such call';
    ELSIF p_supervisor THEN
        allowed := true; why := 'supervisor';
    ELSIF EXISTS (SELECT FROM cti.outbox o WHERE o.target_kind = 'ws' AND o.target_id = p_binding.workstation_id
                     AND o.call_id = p_call.id AND o.type = 'open_card') THEN
        allowed := true; why := 'the desk was on the call';
    ELSIF p_binding.employee_id IS NOT NULL
          AND (p_call.client_card ->> 'manager_id')::bigint = p_binding.employee_id THEN
        allowed := true; why := 'the client''s manager';
    ELSE
        allowed := false; why := 'not on the call, and not the client''s manager';
    END IF;
END
$$;

-- The gateway asks to play a call's recording for a token: the PBX's reference when
-- allowed (a file relative to the recordings folder the gateway serves, or, for onlinePBX,
-- the call's uuid to ask its API for a link); every request logged.
CREATE OR REPLACE FUNCTION cti.gateway_recording_v2(p_token text, p_call_id bigint)
RETURNS TABLE (source text, file text, allowed boolean, why text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_token cti.gateway_token;
    v_binding cti.client_login;
    v_call cti.call;
    v_recording cti.recording;
    v_allowed boolean;
    v_why text;
BEGIN
    SELECT t.* INTO v_token FROM cti.gateway_token t
     WHERE t.token_sha256 = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
       AND t.scope IN ('desk', 'supervisor') AND t.revoked_at IS NULL AND t.expires_at > now();
    IF NOT FOUND THEN
        PERFORM cti.live_token(p_token, 'desk');  -- raises the usual refusal
    END IF;
    IF v_token.scope = 'desk' THEN
        v_binding := cti.token_binding(p_token);
    END IF;
    SELECT * INTO v_call FROM cti.call c WHERE c.id = p_call_id;
    SELECT a.allowed, a.why INTO v_allowed, v_why FROM cti.may_hear(v_binding, v_token.scope = 'supervisor', v_call) a;
    SELECT r.* INTO v_recording FROM cti.recording r
     WHERE v_call.id IS NOT NULL AND r.source = v_call.source
       AND cti.call_of_key(r.source, r.call_key) = v_call.id
     ORDER BY r.started_at LIMIT 1;
    IF v_recording.file IS NULL AND v_call.source = 'onlinepbx3' AND v_call.answered_at IS NOT NULL THEN
        v_recording := ROW(v_call.source, v_call.pbx_call_id, v_call.pbx_call_id, NULL,
                           v_call.started_at, v_call.ended_at)::cti.recording;
    END IF;
    IF v_allowed AND v_recording.file IS NULL THEN
        v_allowed := false; v_why := 'no recording of this call';
    ELSIF v_allowed AND v_recording.ready_at IS NULL THEN
        v_allowed := false; v_why := 'the recording is not complete yet';
    ELSIF v_allowed AND v_recording.started_at < now() - (SELECT g.recordings_keep FROM cti.config g) THEN
        v_allowed := false; v_why := 'past cti.config.recordings_keep';
    END IF;
    INSERT INTO cti.recording_play (login, token_id, call_id, file, allowed, why)
    VALUES (v_binding.login, v_token.id, p_call_id, coalesce(v_recording.file, ''), v_allowed, v_why);
    RETURN QUERY SELECT v_recording.source, CASE WHEN v_allowed THEN v_recording.file END, v_allowed, v_why;
END
$$;

COMMENT ON FUNCTION cti.gateway_recording_v2(text, bigint) IS 'Gateway: a call''s recording (the PBX and its reference) for a desk or supervisor token, if it may hear it; every request logged';

-- The gateway of the release before: the same, without the PBX (for one release).
CREATE OR REPLACE FUNCTION cti.gateway_recording_v1(p_token text, p_call_id bigint)
RETURNS TABLE (file text, allowed boolean, why text)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.file, r.allowed, r.why FROM cti.gateway_recording_v2(p_token, p_call_id) r $$;

COMMENT ON FUNCTION cti.gateway_recording_v1(text, bigint) IS 'Gateway (release before): a call''s recording file for a token, if it may hear it; every request logged';

-- Housekeeping at the tick: references past cti.config.recordings_keep go.
CREATE OR REPLACE FUNCTION cti.prune_recordings(p_at timestamptz) RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_count int;
BEGIN
    DELETE FROM cti.recording r WHERE r.started_at < p_at - (SELECT g.recordings_keep FROM cti.config g);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;
