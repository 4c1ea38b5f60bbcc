-- Presence: can this extension take a call now?
--
-- Rules:
-- - One row per extension (cti.presence), from three sources: the PBX's device state
--   (AMI DeviceStateChange and ExtensionStatus; onlinePBX: see cti.presence_from_onlinepbx),
--   a pause in the PBX's queues (AMI QueueMemberPause, with its reason), and the desk's own
--   "away" or "do not disturb", set by the person (cti.set_presence_v1), until a time or
--   until changed.
-- - A row changes only when a value changes; each change rings the doorbell
--   `cti_presence_v1` with the extension only (the wallboard and desks re-read).
-- - What counts, in this order: away or do not disturb set at the desk (while not past
--   its until), then a queue pause, then the device: NOT_INUSE available; INUSE, BUSY,
--   ONHOLD busy; RINGING ringing; UNAVAILABLE, INVALID offline; anything else unknown.
-- - A device names its extension as a channel of it would (cti.ami_member_extension):
--   PJSIP/101 is extension 101, a queue member Local/101@from-queue too; devices that are no
--   phone's (Queue:, Custom:, a Local/ channel's own state) are ignored with a note.
-- Why a table and not a view over calls: "busy" must also cover calls pgcti does not see
-- (a desk's second line, a call before the ingester started) and what the person says.

-- The state that counts, from a presence row (NULL row: unknown).
CREATE OR REPLACE FUNCTION cti.presence_state(p cti.presence) RETURNS text
LANGUAGE sql STABLE  -- a SQL-standard body: inlined into the caller
RETURN CASE WHEN p.desk_state IS NOT NULL AND (p.desk_until IS NULL OR p.desk_until > now()) THEN p.desk_state
            WHEN p.paused THEN 'paused'
            WHEN p.device_state IN ('INUSE', 'BUSY', 'ONHOLD', 'RINGINUSE') THEN 'busy'
            WHEN p.device_state = 'RINGING' THEN 'ringing'
            WHEN p.device_state IN ('UNAVAILABLE', 'INVALID') THEN 'offline'
            WHEN p.device_state = 'NOT_INUSE' THEN 'available'
            ELSE 'unknown' END;

-- Since when that state holds: the time of the value it comes from.
CREATE OR REPLACE FUNCTION cti.presence_since(p cti.presence) RETURNS timestamptz
LANGUAGE sql STABLE
RETURN CASE WHEN p.desk_state IS NOT NULL AND (p.desk_until IS NULL OR p.desk_until > now()) THEN p.desk_since
            WHEN p.paused THEN p.paused_since
            ELSE p.device_since END;

-- Record one change of an extension's presence; nothing (and no doorbell) when nothing
-- changes. p_field: 'device', 'pause' or 'desk'. Returns a note for the raw event.
CREATE OR REPLACE FUNCTION cti.change_presence(p_extension text, p_field text, p_state text, p_reason text,
                                               p_until timestamptz, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_changed boolean;
BEGIN
    INSERT INTO cti.presence AS p (extension) VALUES (p_extension) ON CONFLICT (extension) DO NOTHING;
    UPDATE cti.presence p SET
           device_state = CASE WHEN p_field = 'device' THEN p_state ELSE p.device_state END,
           device_since = CASE WHEN p_field = 'device' THEN p_at ELSE p.device_since END,
           paused = CASE WHEN p_field = 'pause' THEN p_state = 'paused' ELSE p.paused END,
           paused_reason = CASE WHEN p_field = 'pause' THEN p_reason ELSE p.paused_reason END,
           paused_since = CASE WHEN p_field = 'pause' THEN p_at ELSE p.paused_since END,
           desk_state = CASE WHEN p_field = 'desk' THEN nullif(p_state, 'available') ELSE p.desk_state END,
           desk_until = CASE WHEN p_field = 'desk' THEN p_until ELSE p.desk_until END,
           desk_since = CASE WHEN p_field = 'desk' THEN p_at ELSE p.desk_since END,
           changed_at = p_at
     WHERE p.extension = p_extension
       AND CASE p_field WHEN 'device' THEN p.device_state IS DISTINCT FROM p_state
                        WHEN 'pause' THEN p.paused IS DISTINCT FROM (p_state = 'paused')
                                          OR p.paused_reason IS DISTINCT FROM p_reason
                        ELSE p.desk_state IS DISTINCT FROM nullif(p_state, 'available')
                             OR p.desk_until IS DISTINCT FROM p_until END;
    v_changed := FOUND;
    IF v_changed THEN
        PERFORM pg_notify('cti_presence_v1', p_extension);  -- the doorbell: the extension only
    END IF;
    RETURN format('presence of %s: %s%s', p_extension, p_state, CASE WHEN v_changed THEN '' ELSE ' (unchanged)' END);
END
$$;

-- AMI: DeviceStateChange, ExtensionStatus and QueueMemberPause into presence; NULL for
-- any other block.
CREATE OR REPLACE FUNCTION cti.presence_from_ami(p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'Event';
    v_fields jsonb;
    v_device text;
    v_extension text;
BEGIN
    IF v_event IS NULL OR v_event NOT IN ('DeviceStateChange', 'ExtensionStatus', 'QueueMemberPause') THEN
        RETURN NULL;
    END IF;
    v_fields := cti.ami_fields(p_frame);
    IF v_event = 'ExtensionStatus' THEN  -- a hint: the extension itself, its state in words
        v_extension := cti.required_field(v_fields, 'Exten', v_event, 'AMI');
        RETURN cti.change_presence(v_extension, 'device',
            CASE v_fields ->> 'StatusText'
                WHEN 'Idle' THEN 'NOT_INUSE' WHEN 'InUse' THEN 'INUSE' WHEN 'Busy' THEN 'BUSY'
                WHEN 'Unavailable' THEN 'UNAVAILABLE' WHEN 'Ringing' THEN 'RINGING'
                WHEN 'InUse&Ringing' THEN 'RINGINUSE' WHEN 'Hold' THEN 'ONHOLD' WHEN 'InUse&Hold' THEN 'ONHOLD'
                ELSE 'UNKNOWN' END, NULL, NULL, p_at);
    END IF;
    v_device := cti.required_field(v_fields, CASE v_event WHEN 'DeviceStateChange' THEN 'Device' ELSE 'Interface' END,
                                   v_event, 'AMI');
    -- A phone named as its channels are, less their suffix (PJSIP/101); a queue member also
    -- as a Local/ channel (Local/103@from-queue): cti.ami_member_extension, 53_queue_facts.sql.
    v_extension := CASE WHEN v_event = 'QueueMemberPause' OR v_device ~ '^(PJSIP|SIP|IAX2|DAHDI)/[^/]+$'
                        THEN cti.ami_member_extension(v_device) END;
    IF v_extension IS NULL THEN
        RETURN format('%s of %s: no extension''s device', v_event, left(v_device, 80));
    END IF;
    IF v_event = 'DeviceStateChange' THEN
        RETURN cti.change_presence(v_extension, 'device', upper(left(cti.required_field(v_fields, 'State', v_event, 'AMI'), 20)),
                                   NULL, NULL, p_at);
    END IF;
    -- The pause's history, per queue, for the agents' figures (86_queue_analytics.sql).
    IF v_fields ->> 'Paused' = '1' THEN
        INSERT INTO cti.queue_pause (queue, agent, paused_at, reason)
        SELECT coalesce(v_fields ->> 'Queue', ''), v_extension, p_at,
               nullif(left(coalesce(v_fields ->> 'PausedReason', v_fields ->> 'Reason'), 80), '')
         WHERE NOT EXISTS (SELECT FROM cti.queue_pause q WHERE q.queue = coalesce(v_fields ->> 'Queue', '')
                              AND q.agent = v_extension AND q.resumed_at IS NULL);
    ELSE
        UPDATE cti.queue_pause q SET resumed_at = p_at
         WHERE q.queue = coalesce(v_fields ->> 'Queue', '') AND q.agent = v_extension AND q.resumed_at IS NULL;
    END IF;
    RETURN cti.change_presence(v_extension, 'pause',
        CASE WHEN v_fields ->> 'Paused' = '1' THEN 'paused' ELSE 'available' END,
        CASE WHEN v_fields ->> 'Paused' = '1' THEN nullif(left(coalesce(v_fields ->> 'PausedReason', v_fields ->> 'Reason'), 80), '') END,
        NULL, p_at);
END
$$;

-- onlinePBX's presence events: is this one (its name in 2.0's `name`, 3.0's `event`)?
CREATE OR REPLACE FUNCTION cti.onlinepbx_presence_event(p_frame jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller
RETURN coalesce(p_frame ->> 'event', p_frame ->> 'name') IN ('blf', 'registration', 'user_blf', 'user_registration');

-- onlinePBX: an extension's device state from API 2.0's `blf` (`uid`, `status`: ringing,
-- answered, hangup, unregistered) and `registration` events, and API 3.0's `user_blf` and
-- `user_registration` (their event groups). Only 2.0's blf is documented publicly; the others
-- are read by the same names (`uid`, `status`), with `user`, `number`, `extension` and
-- `state` as fallbacks. A phone registers again every few minutes, on a call too: a
-- registration only brings an offline or unseen phone back (available); an unregistration
-- or expiry makes it offline. An event with no extension or status read this way is
-- ignored, noted with the fields it had. NULLs for any other event.
CREATE OR REPLACE FUNCTION cti.presence_from_onlinepbx(p_frame jsonb, p_at timestamptz, OUT status text, OUT detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := coalesce(p_frame ->> 'event', p_frame ->> 'name');
    v_data jsonb := coalesce(p_frame -> 'data', p_frame -> 'args' -> 0);
    v_extension text;
    v_status text;
    v_state text;
BEGIN
    IF NOT cti.onlinepbx_presence_event(p_frame) THEN
        RETURN;
    END IF;
    status := 'ignored';
    IF jsonb_typeof(v_data) IS DISTINCT FROM 'object' THEN
        detail := format('presence: %s without data', v_event);
        RETURN;
    END IF;
    v_extension := coalesce(v_data ->> 'uid', v_data ->> 'user', v_data ->> 'number', v_data ->> 'extension');
    v_status := lower(coalesce(v_data ->> 'status', v_data ->> 'state'));
    v_state := CASE WHEN v_status = 'ringing' THEN 'RINGING'
                    WHEN v_status = 'answered' THEN 'INUSE'
                    WHEN v_status = 'hangup' THEN 'NOT_INUSE'
                    WHEN v_status IN ('unregistered', 'unregister', 'expired', 'unreachable', 'offline') THEN 'UNAVAILABLE'
                    WHEN v_status IN ('registered', 'register', 'reachable', 'online') THEN 'registered' END;
    IF v_state IS NULL OR NOT cti.is_extension(coalesce(v_extension, '')) THEN
        detail := format('presence: %s with no extension and state pgcti reads (fields: %s)', v_event,
                         coalesce((SELECT left(string_agg(k, ', ' ORDER BY k), 200) FROM jsonb_object_keys(v_data) k), 'none'));
        RETURN;
    END IF;
    status := 'processed';
    IF v_state = 'registered' THEN
        IF coalesce((SELECT p.device_state FROM cti.presence p WHERE p.extension = v_extension),
                    'UNAVAILABLE') NOT IN ('UNAVAILABLE', 'INVALID') THEN
            detail := format('presence of %s: registered again (unchanged)', v_extension);
            RETURN;
        END IF;
        v_state := 'NOT_INUSE';
    END IF;
    detail := cti.change_presence(v_extension, 'device', v_state, NULL, NULL, p_at);
END
$$;

-- Every extension's presence now, for desks, the wallboard and routing.
CREATE OR REPLACE FUNCTION cti.presence_now()
RETURNS TABLE (extension text, state text, since timestamptz, paused_reason text, until timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.extension, cti.presence_state(p), cti.presence_since(p),
           CASE WHEN p.paused THEN p.paused_reason END,
           CASE WHEN cti.presence_state(p) IN ('away', 'dnd') THEN p.desk_until END
      FROM cti.presence p ORDER BY p.extension
$$;

-- A desk sets its own presence: 'away' or 'dnd' (until a time, or until changed), or
-- 'available'. Returns the state that counts now.
CREATE OR REPLACE FUNCTION cti.set_desk_presence(p_binding cti.client_login, p_state text, p_until timestamptz)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_extension text;
BEGIN
    IF p_state IS NULL OR p_state NOT IN ('available', 'away', 'dnd') THEN
        RAISE EXCEPTION 'presence must be available, away or dnd, not %', coalesce(quote_literal(left(p_state, 40)), 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_until IS NOT NULL AND p_until <= now() THEN
        RAISE EXCEPTION 'until % has passed', p_until USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_extension := cti.crm_extension_for_workstation(p_binding.workstation_id);
    IF v_extension IS NULL THEN
        RAISE EXCEPTION 'login "%" has no desk with an extension: presence is an extension''s', p_binding.login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM cti.change_presence(v_extension, 'desk', p_state, NULL, CASE WHEN p_state <> 'available' THEN p_until END, now());
    RETURN (SELECT cti.presence_state(p) FROM cti.presence p WHERE p.extension = v_extension);
END
$$;
