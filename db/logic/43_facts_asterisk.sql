-- Facts from Asterisk AMI events (Asterisk 12 and later; AMI 2.0 event names).
--
-- Rules:
-- - A call is its Linkedid; a leg is a channel's Uniqueid.
-- - Only channels at the ends of a call are legs: a device (PJSIP/101-00000007, SIP/...,
--   IAX2/...: extension 101, or what cti.crm_extension_for_channel() says) or a trunk
--   (cti.config.ami_trunk_channels, ami_trunk_contexts). A channel neither names is told
--   by its event: dialled by its name alone, or calling with a short number, a device
--   (9170-12, alice); dialled with a number through it, or calling from outside, a trunk.
--   Local/ channels are wires between legs: dials to them are skipped (the channel they
--   dial in turn is followed), and who they connect comes out of the bridges.
-- - The channel that starts a call (Uniqueid = Linkedid) is a leg from its Newchannel:
--   from a trunk, the customer calling our line; from a device, an extension dialling.
--   Every other leg starts with the DialBegin (or AgentCalled) that rings it, which says
--   who calls: an extension, a customer through a trunk, or a Local/ wire's caller id; a
--   trunk known only by its context is known by its leg (52_asterisk_calls.sql).
-- - A leg is answered at Newstate Up or DialEnd ANSWER (AgentConnect); it ends at Hangup,
--   or earlier at a DialEnd that says why (BUSY, CANCEL, NOANSWER; AgentRingNoAnswer), and
--   the caller's leg at QueueCallerAbandon. Hangup causes are Q.850 codes, named as
--   onlinePBX names them (17 USER_BUSY, 19 NO_ANSWER, ...).
-- - A customer with no number (anonymous, restricted, ...), or whose NewCallerid says
--   presentation prohibited, has withheld it: nothing shown to people carries it.
-- - BridgeEnter/BridgeLeave are stays in a bridge (52_asterisk_calls.sql pairs them);
--   Hold/Unhold hold a leg. Transfers, queue joins and Local/ optimisation carry nothing
--   the Dial and Bridge events do not already say: ignored with a note saying so.
-- - Asterisk 11 names (Dial, Bridge, Join, Masquerade, ...) and unknown events are
--   ignored with a note; so are events that carry no call fact (VarSet, Newexten, ...).
-- - Times: the block's Timestamp (manager.conf timestampevents = yes), else its arrival.
-- - A block of a handled event that repeats a key Asterisk sends once is refused, with the
--   reason beside it: a line break in a value let a forged field in (ami_repeated_keys).
-- Why: the same facts as the onlinePBX sources, so the same call logic gives the same
-- rings, cards and history for the same calls.

-- An AMI block's fields as one object; a repeated key (ChanVariable, the only kind a block
-- of a handled event may repeat) keeps its first value here (the raw log keeps every one).
CREATE OR REPLACE FUNCTION cti.ami_fields(p_frame jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE  -- not sql: see 50_call_facts.sql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(f.field ->> 0, f.field ->> 1 ORDER BY f.n DESC), '{}')
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_frame -> 'fields') = 'array' THEN p_frame -> 'fields' END)
                   WITH ORDINALITY AS f(field, n)
             WHERE jsonb_typeof(f.field) = 'array');
END
$$;

-- The keys an AMI block repeats that Asterisk sends once, NULL when none. Asterisk repeats
-- only lists of variables (ChanVariable, DestChanVariable: every repeat in the captures of
-- ../shared/reference/ami-captures); it escapes a line break in a caller or connected
-- name, or a variable's value, as \r \n (Asterisk 22, main/manager_channels.c). Another
-- repeat is a value that broke its line, and the line after it a forged field: no value of
-- such a block is to be trusted, neither the first nor the last.
CREATE OR REPLACE FUNCTION cti.ami_repeated_keys(p_frame jsonb) RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT string_agg(k, ', ' ORDER BY k)
      FROM (SELECT f.field ->> 0 AS k
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_frame -> 'fields') = 'array' THEN p_frame -> 'fields' END) f(field)
             WHERE jsonb_typeof(f.field) = 'array'
             GROUP BY 1 HAVING count(*) > 1) r
     WHERE k !~* 'ChanVariable$'
$$;

-- A Q.850 cause code as AMI sends it (Hangup's Cause) -> the name onlinePBX uses.
CREATE OR REPLACE FUNCTION cti.q850_cause(p_code text) RETURNS text
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN CASE p_code
        WHEN '0' THEN 'UNSPECIFIED' WHEN '1' THEN 'UNALLOCATED_NUMBER' WHEN '3' THEN 'NO_ROUTE_DESTINATION'
        WHEN '16' THEN 'NORMAL_CLEARING' WHEN '17' THEN 'USER_BUSY' WHEN '18' THEN 'NO_USER_RESPONSE'
        WHEN '19' THEN 'NO_ANSWER' WHEN '20' THEN 'SUBSCRIBER_ABSENT' WHEN '21' THEN 'CALL_REJECTED'
        WHEN '26' THEN 'NON_SELECTED_USER_CLEARING' WHEN '27' THEN 'DESTINATION_OUT_OF_ORDER'
        WHEN '28' THEN 'INVALID_NUMBER_FORMAT' WHEN '31' THEN 'NORMAL_UNSPECIFIED'
        WHEN '34' THEN 'NORMAL_CIRCUIT_CONGESTION' WHEN '38' THEN 'NETWORK_OUT_OF_ORDER'
        WHEN '41' THEN 'NORMAL_TEMPORARY_FAILURE' WHEN '42' THEN 'SWITCH_CONGESTION'
        WHEN '127' THEN 'INTERWORKING'
        ELSE CASE WHEN p_code ~ '^[0-9]{1,3}$' THEN 'Q850_' || p_code END
    END;

-- A Local/ channel: a wire inside Asterisk between two legs, not a leg.
CREATE OR REPLACE FUNCTION cti.ami_is_local(p_channel text) RETURNS boolean
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN coalesce(p_channel ILIKE 'Local/%', false);

-- Both halves of a Local/ channel (';1' and ';2') are one wire: its name without the half.
CREATE OR REPLACE FUNCTION cti.ami_local_wire(p_channel text) RETURNS text
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN regexp_replace(p_channel, ';[12](<[A-Z]+>)?$', '');

-- The extension of a channel, or NULL for a trunk or a Local/ wire. A channel is a trunk
-- when a rule in cti.config says so; else the adapter names its extension; else what the
-- event shows decides (cti.ami_device_by_evidence): how it was dialled, who it calls as.
CREATE OR REPLACE FUNCTION cti.ami_extension(p_channel text, p_context text, p_dial_string text, p_caller_id text)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg cti.config;
BEGIN
    IF p_channel IS NULL OR cti.ami_is_local(p_channel) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_cfg FROM cti.config;
    IF p_context = ANY (v_cfg.ami_trunk_contexts)
       OR EXISTS (SELECT FROM unnest(v_cfg.ami_trunk_channels) p WHERE p_channel ~ p) THEN
        RETURN NULL;
    END IF;
    RETURN coalesce(nullif(cti.crm_extension_for_channel(p_channel), ''),
                    cti.ami_device_by_evidence(p_channel, p_dial_string, p_caller_id));
END
$$;

-- The peer (endpoint) name of a device or trunk channel: PJSIP/alice-0000001a -> alice.
CREATE OR REPLACE FUNCTION cti.ami_peer(p_channel text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN substring(p_channel FROM '^[A-Za-z0-9]+/(.+)-[0-9a-fA-F]+(?:<[A-Z]+>)?$');

-- Caller ids that mean "no number": what PBXs and carriers put for a withheld or missing one.
CREATE OR REPLACE FUNCTION cti.ami_is_withheld_number(p_caller_id text) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN coalesce(lower(btrim(p_caller_id)) IN ('', '<unknown>', 'anonymous', 'restricted', 'unavailable',
                                              'unknown', 'private', 'withheld', 'blocked', 'anonymous@anonymous.invalid'),
                true);

-- Whether a caller id is a number from outside (or none at all: withheld, unknown), not
-- an extension's: 7 digits or more, however written ('+7 (495) 123-45-67').
CREATE OR REPLACE FUNCTION cti.ami_is_outside_number(p_caller_id text) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN (p_caller_id ~ '^\+?[0-9 ()./-]+$' AND length(regexp_replace(p_caller_id, '[^0-9]', '', 'g')) >= 7)
       OR cti.ami_is_withheld_number(p_caller_id);

-- A channel the adapter does not know, told device or trunk by the event, without any
-- setting (names such as 9170-12, alice or a FreePBX user's endpoint):
-- - dialled: a Dial that names the endpoint alone (DialString 'alice', '9170-12') rings a
--   device; one that dials a number through it ('79161112233@mts', 'mts/89161234567') is
--   a trunk;
-- - starting a call (p_caller_id: its CallerIDNum): an outside number (7 digits or more)
--   or no number at all is a customer on a trunk; anything else (an extension's short
--   number, a name) is a device dialling.
-- Returns the device's extension (its peer name), or NULL for a trunk or when the event
-- does not say. To be certain of a trunk, name it in cti.config.ami_trunk_channels.
CREATE OR REPLACE FUNCTION cti.ami_device_by_evidence(p_channel text, p_dial_string text, p_caller_id text)
RETURNS text
LANGUAGE sql IMMUTABLE
RETURN (SELECT CASE
    WHEN peer IS NULL THEN NULL
    WHEN p_dial_string IS NOT NULL THEN
        CASE WHEN lower(p_dial_string) = lower(peer) THEN peer
             WHEN lower(p_dial_string) LIKE lower(peer) || '/sip%:%' THEN peer  -- the endpoint, at a contact
             END
    WHEN p_caller_id IS NOT NULL THEN
        CASE WHEN cti.ami_is_outside_number(p_caller_id) THEN NULL ELSE peer END
    END
  FROM (SELECT cti.ami_peer(p_channel) AS peer) x);

-- The number a trunk leg dials, from DialBegin: '89161234567@mts' or 'mts/89161234567'
-- (the dial string), else the extension dialled, else the channel's caller id.
CREATE OR REPLACE FUNCTION cti.ami_dialled_number(p_fields jsonb) RETURNS text
LANGUAGE sql IMMUTABLE  -- a SQL-standard body: inlined into the caller (50_call_facts.sql)
RETURN coalesce(substring(p_fields ->> 'DialString' FROM '(?:^|/)(\+?[0-9]{2,})(?:@|$)'),
                    substring(p_fields ->> 'DestExten' FROM '^\+?[0-9]{2,}$'),
                    nullif(p_fields ->> 'DestCallerIDNum', '<unknown>'));

-- One AMI event block (as stored: {"Event": ..., "fields": [[key, value], ...]}) -> call facts.
CREATE OR REPLACE FUNCTION cti.facts_from_asterisk(p_frame jsonb, p_received timestamptz) RETURNS SETOF cti.fact
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event text := p_frame ->> 'Event';
    v jsonb;
    v_fact cti.fact;
    v_channel text;
    v_ext text;
    v_from_ext text;
    v_status text;
    v_repeated text;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "Event"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fact := cti.ignored_event(
        v_event,
        ARRAY['VarSet', 'Newexten', 'NewConnectedLine', 'NewAccountCode', 'BridgeCreate',
              'BridgeDestroy', 'BridgeMerge', 'BridgeInfoChannel', 'BridgeInfoComplete', 'CEL', 'Cdr',
              'ExtensionStatus', 'DeviceStateChange', 'PresenceStateChange', 'FullyBooted', 'SuccessfulAuth',
              'ChallengeSent', 'RTCPSent', 'RTCPReceived', 'UserEvent', 'SoftHangupRequest', 'HangupRequest',
              'AGIExecStart', 'AGIExecEnd', 'AGIExec', 'LocalBridge', 'ChannelTalkingStart', 'ChannelTalkingStop',
              'MusicOnHoldStart', 'MusicOnHoldStop', 'DTMFBegin', 'DTMFEnd', 'PeerStatus', 'ContactStatus',
              'Registry', 'Reload', 'NewPeerAccount', 'MixMonitorStart', 'MixMonitorStop', 'QueueMemberStatus',
              'QueueMemberAdded', 'QueueMemberRemoved', 'QueueMemberPause', 'VoicemailPasswordChange',
              'MessageWaiting', 'DialState', 'SIPRinging', 'ChannelUpdate', 'Shutdown'],
        ARRAY['Newchannel', 'Newstate', 'Hangup', 'Hold', 'Unhold', 'QueueCallerAbandon', 'DialBegin', 'DialEnd',
              'AgentCalled', 'AgentConnect', 'AgentRingNoAnswer', 'BridgeEnter', 'BridgeLeave', 'BlindTransfer',
              'AttendedTransfer', 'LocalOptimizationBegin', 'LocalOptimizationEnd', 'QueueCallerJoin', 'NewCallerid',
              'QueueCallerLeave', 'AgentComplete', 'AgentDump', 'Dial', 'Bridge', 'Link', 'Unlink', 'Join',
              'Leave', 'Masquerade', 'Rename', 'Transfer']);
    IF v_fact.kind = 'ignored' THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    -- Events pgcti handles by noting why they add nothing to what the others say.
    v_fact.kind := 'ignored';
    v_fact.note := CASE
        WHEN v_event IN ('Dial', 'Bridge', 'Link', 'Unlink', 'Join', 'Leave', 'Masquerade', 'Rename', 'Transfer') THEN
            format('event "%s" is from Asterisk 11 or older (before AMI 2.0), which pgcti does not read', v_event)
        WHEN v_event IN ('BlindTransfer', 'AttendedTransfer') THEN
            format('%s: who holds the call follows from the bridges that complete it', v_event)
        WHEN v_event IN ('LocalOptimizationBegin', 'LocalOptimizationEnd') THEN
            format('%s: the BridgeEnter that follows says who talks', v_event)
        WHEN v_event IN ('QueueCallerJoin', 'QueueCallerLeave', 'AgentComplete', 'AgentDump') THEN
            format('%s: the caller''s leg and the Dial events say the same', v_event)
    END;
    IF v_fact.note IS NOT NULL THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_repeated := cti.ami_repeated_keys(p_frame);
    IF v_repeated IS NOT NULL THEN
        RAISE EXCEPTION 'AMI % block repeats %: Asterisk sends each once (a caller name with a line break in it, or a forged line); not used', v_event, v_repeated
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v := cti.ami_fields(p_frame);
    v_fact.at := cti.pbx_time(v -> 'Timestamp', p_received);

    IF v_event IN ('DialBegin', 'DialEnd', 'AgentCalled', 'AgentConnect', 'AgentRingNoAnswer') THEN
        -- The leg is the channel being dialled.
        v_channel := cti.required_field(v, 'DestChannel', v_event, 'block');
        IF cti.ami_is_local(v_channel) THEN
            v_fact.note := format('%s to a Local/ channel: the channel it dials in turn is followed', v_event);
            RETURN NEXT v_fact;
            RETURN;
        END IF;
        v_fact.call_key := cti.required_field(v, 'DestLinkedid', v_event, 'block');
        v_fact.leg := cti.required_field(v, 'DestUniqueid', v_event, 'block');
        IF v_event IN ('DialBegin', 'AgentCalled') THEN
            v_fact.kind := 'leg_created';
            -- Who calls: an extension's device, a customer through a trunk, or through a
            -- Local/ wire (its caller id; its shape says extension or not).
            -- The calling channel is a device when it dials a number out through a trunk
            -- (an extension dialling out), whatever its name.
            v_from_ext := cti.ami_extension(v ->> 'Channel', NULL, NULL,
                                            CASE WHEN v ->> 'DialString' ~ '^\+?[0-9]{3,}@|/\+?[0-9]{3,}$'
                                                 THEN '0' ELSE v ->> 'CallerIDNum' END);
            v_fact.caller_raw := coalesce(v_from_ext, nullif(v ->> 'CallerIDNum', '<unknown>'),
                                          nullif(v ->> 'DestConnectedLineNum', '<unknown>'));
            v_fact.caller_is_extension := CASE WHEN v_from_ext IS NOT NULL THEN true
                                               WHEN v ->> 'Channel' IS NOT NULL AND NOT cti.ami_is_local(v ->> 'Channel') THEN false END;
            -- A queue's member is a device: its Interface names it (AgentCalled has no DialString).
            v_ext := cti.ami_extension(v_channel, NULL, coalesce(v ->> 'DialString',
                                            substring(v ->> 'Interface' FROM '^[^/]+/(.+)$'), ''), NULL);
            v_fact.destination_raw := coalesce(v_ext, cti.ami_dialled_number(v));
            v_fact.destination_is_extension := v_ext IS NOT NULL;
            v_fact.other_leg := v ->> 'Uniqueid';  -- the calling channel (52_asterisk_calls.sql)
        ELSE
            v_status := CASE v_event WHEN 'AgentConnect' THEN 'ANSWER' WHEN 'AgentRingNoAnswer' THEN 'NOANSWER'
                                     ELSE upper(v ->> 'DialStatus') END;
            IF v_status = 'ANSWER' THEN
                v_fact.kind := 'leg_answered';
            ELSIF v_status IN ('BUSY', 'CANCEL', 'NOANSWER', 'CHANUNAVAIL', 'CONGESTION') THEN
                v_fact.kind := 'leg_ended';
                v_fact.cause := CASE v_status WHEN 'BUSY' THEN 'USER_BUSY' WHEN 'CANCEL' THEN 'ORIGINATOR_CANCEL'
                                              WHEN 'NOANSWER' THEN 'NO_ANSWER' WHEN 'CHANUNAVAIL' THEN 'SUBSCRIBER_ABSENT'
                                              ELSE 'NORMAL_CIRCUIT_CONGESTION' END;
            ELSE
                v_fact.note := format('%s with status "%s" carries no call fact', v_event, left(v_status, 40));
            END IF;
        END IF;
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_channel := cti.required_field(v, 'Channel', v_event, 'block');
    IF v_event IN ('BridgeEnter', 'BridgeLeave') THEN
        -- A stay in a bridge: the bridge goes in other_leg, the channel's name in destination_raw.
        v_fact.kind := CASE v_event WHEN 'BridgeEnter' THEN 'bridge_enter' ELSE 'bridge_leave' END;
        v_fact.other_leg := cti.required_field(v, 'BridgeUniqueid', v_event, 'block');
        v_fact.leg := CASE WHEN cti.ami_is_local(v_channel) THEN cti.ami_local_wire(v_channel)
                           ELSE cti.required_field(v, 'Uniqueid', v_event, 'block') END;
        v_fact.call_key := v ->> 'Linkedid';
        v_fact.destination_raw := v_channel;
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF cti.ami_is_local(v_channel) THEN
        v_fact.note := format('%s of a Local/ channel: pgcti follows the channels at its ends', v_event);
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    IF v ->> 'Linkedid' IS NULL AND v ->> 'Uniqueid' IS NOT NULL THEN
        v_fact.note := format('%s without a Linkedid is from Asterisk 11 or older (before AMI 2.0), which pgcti does not read', v_event);
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_fact.call_key := cti.required_field(v, 'Linkedid', v_event, 'block');
    v_fact.leg := cti.required_field(v, 'Uniqueid', v_event, 'block');
    CASE v_event
        WHEN 'Newchannel' THEN
            IF v_fact.leg <> v_fact.call_key THEN
                v_fact.note := 'Newchannel of a channel being dialled: its leg starts with the DialBegin that rings it';
            ELSE
                -- The channel that starts the call: a customer on a trunk calling our line
                -- (never an extension, whatever its shape), or an extension dialling.
                v_ext := cti.ami_extension(v_channel, v ->> 'Context', NULL, coalesce(v ->> 'CallerIDNum', ''));
                v_fact.kind := 'leg_created';
                v_fact.caller_raw := coalesce(v_ext, nullif(v ->> 'CallerIDNum', '<unknown>'));
                v_fact.caller_is_extension := v_ext IS NOT NULL;
                v_fact.destination_raw := nullif(v ->> 'Exten', '');
                v_fact.destination_is_extension := CASE WHEN v_ext IS NULL THEN false END;
                IF v_ext IS NULL AND cti.ami_is_withheld_number(v ->> 'CallerIDNum') THEN
                    RETURN NEXT v_fact;  -- a customer with no number: withheld
                    v_fact.kind := 'caller_withheld';
                END IF;
            END IF;
        WHEN 'NewCallerid' THEN
            -- The dialplan (or the carrier) set the caller id: presentation prohibited
            -- (CID-CallingPres 32-63: "Presentation Prohibited, ...") or no number withholds it.
            IF (substring(v ->> 'CID-CallingPres' FROM '^[0-9]+')::int & 96) = 32
               OR cti.ami_is_withheld_number(v ->> 'CallerIDNum') THEN
                v_fact.kind := 'caller_withheld';
            ELSE
                v_fact.note := 'NewCallerid with the number presented carries no call fact';
            END IF;
        WHEN 'Newstate' THEN
            IF v ->> 'ChannelState' = '6' OR v ->> 'ChannelStateDesc' = 'Up' THEN
                v_fact.kind := 'leg_answered';
            ELSE
                v_fact.note := format('Newstate "%s" carries no call fact', left(v ->> 'ChannelStateDesc', 40));
            END IF;
        WHEN 'Hangup' THEN
            v_fact.kind := 'leg_ended';
            v_fact.cause := cti.q850_cause(v ->> 'Cause');
        WHEN 'QueueCallerAbandon' THEN
            v_fact.kind := 'leg_ended';  -- the caller gave up while waiting
            v_fact.cause := 'ORIGINATOR_CANCEL';
        WHEN 'Hold' THEN
            v_fact.kind := 'leg_hold';
        WHEN 'Unhold' THEN
            v_fact.kind := 'leg_unhold';
    END CASE;
    RETURN NEXT v_fact;
END
$$;

COMMENT ON FUNCTION cti.facts_from_asterisk(jsonb, timestamptz) IS 'Asterisk AMI event block -> call facts (Linkedid = call, Uniqueid = leg); raises naming a missing field';
