CREATE SCHEMA cti;

COMMENT ON SCHEMA cti IS 'pgcti: raw PBX events, calls, the command outbox and the client API';

CREATE TABLE cti.call (
    id bigint NOT NULL,
    source text NOT NULL,
    pbx_call_id text NOT NULL,
    direction text,
    external_number text,
    external_number_raw text,
    dialled text,
    client_id bigint,
    client_match text,
    client_candidates bigint[],
    client_card jsonb,
    started_at timestamp with time zone,
    answered_at timestamp with time zone,
    answered_by text,
    holder_extension text,
    ended_at timestamp with time zone,
    outcome text,
    hangup_cause text,
    hold_count integer DEFAULT 0 NOT NULL,
    last_event_at timestamp with time zone,
    pbx_ended boolean DEFAULT false NOT NULL,
    ring_notified boolean DEFAULT false NOT NULL,
    card_workstation_id bigint,
    routing_note text,
    caller_withheld boolean DEFAULT false NOT NULL,
    CONSTRAINT call_client_match_check CHECK ((client_match = ANY (ARRAY['exact'::text, 'ambiguous'::text, 'new'::text, 'none'::text]))),
    CONSTRAINT call_direction_check CHECK ((direction = ANY (ARRAY['inbound'::text, 'outbound'::text, 'internal'::text]))),
    CONSTRAINT call_outcome_check CHECK ((outcome = ANY (ARRAY['answered'::text, 'missed'::text, 'busy'::text, 'rejected'::text, 'abandoned'::text, 'no_answer'::text])))
);

COMMENT ON TABLE cti.call IS 'One row per PBX call: caller, client, times, who answered, outcome, where the card is open';

COMMENT ON COLUMN cti.call.caller_withheld IS 'The customer withheld their number: cards, notifications and history show "withheld", not the number';

CREATE TYPE cti.call_derivation AS (
	ord integer,
	before_state cti.call,
	after_state cti.call,
	chain text[],
	chain_at timestamp with time zone[],
	transfers_differ boolean,
	ring_now boolean,
	needs_client boolean
);

CREATE TYPE cti.command AS (
	target_kind text,
	target_id bigint,
	type text,
	call_id bigint,
	payload jsonb
);

CREATE TYPE cti.keyed_command AS (
	frame_key bigint,
	step integer,
	sub bigint,
	command cti.command
);

CREATE TYPE cti.derivation_result AS (
	commands cti.keyed_command[],
	lookup_keys bigint[],
	registered boolean,
	callback_steps cti.call_derivation[],
	callback_keys bigint[]
);

CREATE TYPE cti.fact AS (
	kind text,
	call_key text,
	leg text,
	other_leg text,
	at timestamp with time zone,
	caller_raw text,
	destination_raw text,
	cause text,
	note text,
	caller_is_extension boolean,
	destination_is_extension boolean
);

CREATE TYPE cti.frame_fact AS (
	raw_event_id bigint,
	received_at timestamp with time zone,
	fact cti.fact,
	call_id bigint,
	round integer
);

CREATE FUNCTION cti.ack(p_kind text, p_id bigint, p_seq bigint) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_acked bigint;
BEGIN
    -- Capped at what was numbered, read without a lock: acking never waits for the writer,
    -- and the writer never waits for an ack (cti.stream_ack is apart from cti.stream).
    INSERT INTO cti.stream_ack AS a (target_kind, target_id, acked_seq, acked_at)
    SELECT p_kind, p_id, least(greatest(p_seq, 0), s.last_seq), now()
      FROM cti.stream s WHERE s.target_kind = p_kind AND s.target_id = p_id
    ON CONFLICT (target_kind, target_id) DO UPDATE
       SET acked_seq = greatest(a.acked_seq, EXCLUDED.acked_seq), acked_at = EXCLUDED.acked_at
    RETURNING a.acked_seq INTO v_acked;
    RETURN v_acked;
END
$$;

CREATE FUNCTION cti.ack_commands_v1(p_seq bigint) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.ack('ws', (cti.my_binding()).workstation_id, p_seq) $$;

COMMENT ON FUNCTION cti.ack_commands_v1(p_seq bigint) IS 'Client API v1: mark my workstation''s commands up to p_seq handled; returns the acknowledged seq';

CREATE FUNCTION cti.ack_notifications_v1(p_seq bigint) RETURNS bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.ack('emp', (cti.my_binding()).employee_id, p_seq) $$;

COMMENT ON FUNCTION cti.ack_notifications_v1(p_seq bigint) IS 'Client API v1: mark my notifications up to p_seq handled; returns the acknowledged seq';

CREATE FUNCTION cti.ami_block(p_body text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'Event', (array_agg(trim(substr(l.line, strpos(l.line, ':') + 1)) ORDER BY l.n)
                      FILTER (WHERE lower(split_part(l.line, ':', 1)) = 'event'))[1],
        'fields', coalesce(to_jsonb(array_agg(ARRAY[split_part(l.line, ':', 1),
                                                    ltrim(substr(l.line, strpos(l.line, ':') + 1))] ORDER BY l.n)
                                        FILTER (WHERE strpos(l.line, ':') > 0)), '[]'))
      -- lines end with CRLF or LF
      FROM unnest(string_to_array(replace(p_body, E'\r\n', E'\n'), E'\n')) WITH ORDINALITY AS l(line, n));
END
$$;

CREATE FUNCTION cti.ami_is_withheld_number(p_caller_id text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN COALESCE((lower(btrim(p_caller_id)) = ANY (ARRAY[''::text, '<unknown>'::text, 'anonymous'::text, 'restricted'::text, 'unavailable'::text, 'unknown'::text, 'private'::text, 'withheld'::text, 'blocked'::text, 'anonymous@anonymous.invalid'::text])), true);

CREATE FUNCTION cti.ami_is_outside_number(p_caller_id text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN (((p_caller_id ~ '^\+?[0-9 ()./-]+$'::text) AND (length(regexp_replace(p_caller_id, '[^0-9]'::text, ''::text, 'g'::text)) >= 7)) OR cti.ami_is_withheld_number(p_caller_id));

CREATE FUNCTION cti.ami_peer(p_channel text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN "substring"(p_channel, '^[A-Za-z0-9]+/(.+)-[0-9a-fA-F]+(?:<[A-Z]+>)?$'::text);

CREATE FUNCTION cti.ami_device_by_evidence(p_channel text, p_dial_string text, p_caller_id text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN (SELECT CASE WHEN (x.peer IS NULL) THEN NULL::text WHEN (ami_device_by_evidence.p_dial_string IS NOT NULL) THEN CASE WHEN (lower(ami_device_by_evidence.p_dial_string) = lower(x.peer)) THEN x.peer WHEN (lower(ami_device_by_evidence.p_dial_string) ~~ (lower(x.peer) || '/sip%:%'::text)) THEN x.peer ELSE NULL::text END WHEN (ami_device_by_evidence.p_caller_id IS NOT NULL) THEN CASE WHEN cti.ami_is_outside_number(ami_device_by_evidence.p_caller_id) THEN NULL::text ELSE x.peer END ELSE NULL::text END AS "case" FROM (SELECT cti.ami_peer(ami_device_by_evidence.p_channel) AS peer) x);

CREATE FUNCTION cti.ami_dialled_number(p_fields jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN COALESCE("substring"((p_fields ->> 'DialString'::text), '(?:^|/)(\+?[0-9]{2,})(?:@|$)'::text), "substring"((p_fields ->> 'DestExten'::text), '^\+?[0-9]{2,}$'::text), NULLIF((p_fields ->> 'DestCallerIDNum'::text), '<unknown>'::text));

CREATE FUNCTION cti.ami_extension(p_channel text, p_context text, p_dial_string text, p_caller_id text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.ami_fields(p_frame jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT coalesce(jsonb_object_agg(f.field ->> 0, f.field ->> 1 ORDER BY f.n DESC), '{}')
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_frame -> 'fields') = 'array' THEN p_frame -> 'fields' END)
                   WITH ORDINALITY AS f(field, n)
             WHERE jsonb_typeof(f.field) = 'array');
END
$$;

CREATE FUNCTION cti.ami_is_local(p_channel text) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN COALESCE((p_channel ~~* 'Local/%'::text), false);

CREATE FUNCTION cti.ami_local_wire(p_channel text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN regexp_replace(p_channel, ';[12](<[A-Z]+>)?$'::text, ''::text);

CREATE FUNCTION cti.ami_member_extension(p_interface text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT CASE WHEN p_interface ~ '^Local/[0-9]+@' THEN substring(p_interface FROM '^Local/([0-9]+)@')
                WHEN p_interface ~ '^[A-Za-z0-9]+/[^/-]+$' THEN cti.crm_extension_for_channel(p_interface || '-00000000') END
$_$;

CREATE FUNCTION cti.ami_repeated_keys(p_frame jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT string_agg(k, ', ' ORDER BY k)
      FROM (SELECT f.field ->> 0 AS k
              FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_frame -> 'fields') = 'array' THEN p_frame -> 'fields' END) f(field)
             WHERE jsonb_typeof(f.field) = 'array'
             GROUP BY 1 HAVING count(*) > 1) r
     WHERE k !~* 'ChanVariable$'
$_$;

CREATE FUNCTION cti.ami_who_rings(p_source text, p_fact cti.fact) RETURNS cti.fact
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_caller text;
    v_call bigint;
BEGIN
    IF p_fact.other_leg IS NOT NULL THEN  -- the calling channel
        SELECT l.caller_raw INTO v_caller FROM cti.call_leg l
         WHERE l.source = p_source AND l.leg_uuid = p_fact.other_leg
           AND l.created_at IS NOT NULL AND NOT l.caller_is_extension AND NOT l.destination_is_extension;
        IF FOUND THEN
            p_fact.caller_raw := v_caller;
            p_fact.caller_is_extension := false;
        END IF;
        p_fact.other_leg := NULL;
    END IF;
    IF p_fact.caller_is_extension IS NULL THEN  -- through a Local/ wire
        v_call := cti.call_of_key(p_source, p_fact.call_key);
        IF NOT EXISTS (SELECT FROM cti.call_leg l
                        WHERE l.call_id = v_call AND l.created_at IS NOT NULL
                          AND NOT l.caller_is_extension AND NOT l.destination_is_extension) THEN
            p_fact.caller_is_extension := true;
            IF NOT p_fact.destination_is_extension THEN
                -- The extension that answered in the call (an Originate rang it first), else
                -- the one whose device started it: never the caller id the dialplan set on
                -- the wire (often the company's public number).
                SELECT x.extension INTO v_caller FROM (
                    SELECT l.destination AS extension, 1 AS rank, l.answered_at AS at, l.leg_uuid
                      FROM cti.call_leg l
                     WHERE l.call_id = v_call AND l.destination_is_extension AND l.answered_at IS NOT NULL
                    UNION ALL
                    SELECT l.caller, 2, l.created_at, l.leg_uuid FROM cti.call_leg l
                     WHERE l.call_id = v_call AND l.caller_is_extension AND l.created_at IS NOT NULL
                ) x ORDER BY x.rank, CASE WHEN x.rank = 1 THEN x.at END DESC, x.at, x.leg_uuid LIMIT 1;
                p_fact.caller_raw := coalesce(v_caller, p_fact.caller_raw);
            END IF;
        END IF;
    END IF;
    RETURN p_fact;
END
$$;

CREATE FUNCTION cti.apply_asterisk_fact(p_source text, p_fact cti.fact, p_seq bigint) RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_call bigint;
    v_calls bigint[];
BEGIN
    IF p_fact.kind IN ('bridge_enter', 'bridge_leave') THEN
        RETURN cti.record_bridge_stay(p_source, p_fact, p_seq);
    END IF;
    IF p_fact.kind = 'leg_created' THEN
        p_fact := cti.ami_who_rings(p_source, p_fact);
    END IF;
    SELECT call_id INTO v_call FROM cti.call_leg WHERE source = p_source AND leg_uuid = p_fact.leg;
    IF v_call IS NULL THEN
        v_call := cti.apply_fact(p_source, p_fact);  -- the call of its Linkedid
    ELSE
        PERFORM cti.lock_calls(ARRAY[v_call]);
        PERFORM cti.apply_facts(p_source, ARRAY[ROW(NULL, NULL, p_fact, v_call, NULL)::cti.frame_fact]);
    END IF;
    v_calls := ARRAY[v_call];
    IF p_fact.kind = 'leg_created' THEN
        v_calls := v_calls || cti.pair_bridge_legs(p_source, ARRAY(
            SELECT m.bridge_id FROM cti.ami_bridge_member m WHERE m.source = p_source AND m.member = p_fact.leg));
    END IF;
    RETURN ARRAY(SELECT DISTINCT c.id FROM cti.call c WHERE c.id = ANY (v_calls) ORDER BY c.id);
END
$$;

CREATE FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.apply_facts(p_source text, p_facts cti.frame_fact[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
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

CREATE FUNCTION cti.apply_onlinepbx2_fact(p_source text, p_fact cti.fact) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_call_id bigint := cti.correlate_onlinepbx2(p_source, p_fact);
BEGIN
    PERFORM cti.apply_facts(p_source, ARRAY[ROW(NULL, NULL, p_fact, v_call_id, NULL)::cti.frame_fact]);
    RETURN v_call_id;
END
$$;

CREATE FUNCTION cti.are_regular_expressions(p_patterns text[]) RETURNS boolean
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM '' ~ p FROM unnest(p_patterns) p;
    RETURN true;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN false;
END
$$;

CREATE FUNCTION cti.attach_phone_column(p_table regclass, p_phone_column name, p_key_column name DEFAULT NULL::name, p_row_column name DEFAULT NULL::name) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_row_column name := p_row_column;
    v_column name;
    v_source cti.phone_source;
    v_statement text;
BEGIN
    IF NOT (has_table_privilege(p_table, 'SELECT') AND has_table_privilege(p_table, 'TRIGGER')) THEN
        RAISE EXCEPTION 'pgcti cannot read or watch %', p_table
            USING HINT = format('GRANT SELECT, TRIGGER ON %s TO cti_owner; (and USAGE on its schema)', p_table);
    END IF;
    IF v_row_column IS NULL THEN
        SELECT a.attname INTO v_row_column
          FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = p_table AND i.indisprimary AND i.indnkeyatts = 1;
        IF v_row_column IS NULL THEN
            RAISE EXCEPTION '% has no one-column primary key', p_table
                USING HINT = 'name a column that identifies a row: p_row_column => ''...''';
        END IF;
    END IF;
    FOREACH v_column IN ARRAY ARRAY[p_phone_column, v_row_column, coalesce(p_key_column, v_row_column)] LOOP
        IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = p_table AND attname = v_column
                                                   AND attnum > 0 AND NOT attisdropped) THEN
            RAISE EXCEPTION '% has no column %', p_table, v_column;
        END IF;
    END LOOP;
    INSERT INTO cti.phone_source (table_name, phone_column, row_column, key_column)
    VALUES (p_table, p_phone_column, v_row_column, coalesce(p_key_column, v_row_column))
    RETURNING * INTO v_source;
    FOREACH v_statement IN ARRAY cti.phone_source_trigger_sql(v_source) LOOP
        EXECUTE v_statement;
    END LOOP;
    RETURN cti.refresh_phone_directory(v_source.id);
END
$$;

COMMENT ON FUNCTION cti.attach_phone_column(p_table regclass, p_phone_column name, p_key_column name, p_row_column name) IS 'Keep the numbers of a CRM phone column in cti.phone_directory (triggers + backfill)';

CREATE FUNCTION cti.call_of_key(p_source text, p_key text) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN coalesce((SELECT c.id FROM cti.call c WHERE c.source = p_source AND c.pbx_call_id = p_key),
                    (SELECT a.call_id FROM cti.call_alias a WHERE a.source = p_source AND a.pbx_call_id = p_key));
END
$$;

CREATE FUNCTION cti.client_kind(p_call cti.call) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE WHEN ((p_call).client_id IS NOT NULL) THEN COALESCE(((p_call).client_card ->> 'record_kind'::text), 'client'::text) ELSE NULL::text END;

CREATE FUNCTION cti.dial_request_of_call(p_call cti.call) RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION cti.call_payload(p_call cti.call) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN jsonb_strip_nulls(jsonb_build_object('call_id', (p_call).id, 'direction', (p_call).direction, 'number', CASE WHEN (NOT (p_call).caller_withheld) THEN COALESCE((p_call).external_number, (p_call).external_number_raw) ELSE NULL::text END, 'withheld', CASE WHEN (p_call).caller_withheld THEN true ELSE NULL::boolean END, 'dialled', (p_call).dialled, 'client_id', (p_call).client_id, 'record_kind', cti.client_kind(p_call), 'match', (p_call).client_match, 'is_new', ((p_call).client_match = 'new'::text), 'client_name', ((p_call).client_card ->> 'client_name'::text), 'company', ((p_call).client_card ->> 'company'::text), 'manager_id', (((p_call).client_card ->> 'manager_id'::text))::bigint, 'manager_surname', ((p_call).client_card ->> 'manager_surname'::text), 'candidates', ((p_call).client_card -> 'candidates'::text), 'extension', (p_call).holder_extension, 'dial_request', CASE WHEN ((p_call).direction = ANY (ARRAY['outbound'::text, 'internal'::text])) THEN cti.dial_request_of_call(p_call) ELSE NULL::uuid END));

CREATE FUNCTION cti.callback_owner(p_call cti.call, OUT owner_id bigint, OUT rule text) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.callback_party(p_client_id bigint, p_e164 text) RETURNS text
    LANGUAGE sql STABLE
    RETURN CASE WHEN (p_client_id IS NOT NULL) THEN ('client:'::text || p_client_id) ELSE ('number:'::text || p_e164) END;

CREATE TABLE cti.callback_task (
    id bigint NOT NULL,
    party text NOT NULL,
    client_id bigint,
    e164 text NOT NULL,
    dialled text,
    first_call_id bigint NOT NULL,
    last_call_id bigint NOT NULL,
    missed_calls integer DEFAULT 1 NOT NULL,
    owner_id bigint,
    owner_rule text,
    created_at timestamp with time zone NOT NULL,
    due_at timestamp with time zone NOT NULL,
    closed_at timestamp with time zone,
    closed_by_call_id bigint,
    closed_by_extension text,
    closed_how text,
    CONSTRAINT callback_task_check CHECK (((closed_at IS NULL) = (closed_how IS NULL))),
    CONSTRAINT callback_task_closed_how_check CHECK ((closed_how = ANY (ARRAY['outbound_answered'::text, 'inbound_answered'::text]))),
    CONSTRAINT callback_task_missed_calls_check CHECK ((missed_calls > 0)),
    CONSTRAINT callback_task_owner_rule_check CHECK ((owner_rule = ANY (ARRAY['manager'::text, 'line'::text, 'default'::text])))
);

COMMENT ON TABLE cti.callback_task IS 'Missed calls to call back: one open task per client (or unknown number), its owner, due time, and who closed it';

CREATE FUNCTION cti.callback_payload(p_task cti.callback_task, p_call cti.call) RETURNS jsonb
    LANGUAGE sql STABLE
    RETURN jsonb_strip_nulls(jsonb_build_object('task_id', (p_task).id, 'number', (p_task).e164, 'dialled', (p_task).dialled, 'missed_calls', (p_task).missed_calls, 'client_id', (p_task).client_id, 'client_name', ((p_call).client_card ->> 'client_name'::text), 'company', ((p_call).client_card ->> 'company'::text), 'is_new', ((p_call).client_match = 'new'::text)));

CREATE FUNCTION cti.callback_tasks_v1() RETURNS TABLE(task_id bigint, number text, client_id bigint, client_name text, dialled text, missed_calls integer, created_at timestamp with time zone, due_at timestamp with time zone, last_call_id bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT t.id, t.e164, t.client_id, c.client_card ->> 'client_name', t.dialled,
           t.missed_calls, t.created_at, t.due_at, t.last_call_id
      FROM cti.callback_task t
      JOIN cti.call c ON c.id = t.last_call_id
     WHERE t.closed_at IS NULL AND t.owner_id = (cti.my_binding()).employee_id
     ORDER BY t.due_at, t.id
$$;

COMMENT ON FUNCTION cti.callback_tasks_v1() IS 'Client API v1: my open callback tasks (missed calls to call back), the most overdue first';

CREATE FUNCTION cti.change_presence(p_extension text, p_field text, p_state text, p_reason text, p_until timestamp with time zone, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.channel_name(p_kind text, p_id bigint) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT 'cti_' || p_kind || '_v1_' || p_id || '_'
                   || left(encode(sha256(k.key || convert_to(p_kind || ':' || p_id, 'UTF8')), 'hex'), 24)
              FROM cti.channel_key k);
END
$$;

COMMENT ON FUNCTION cti.channel_name(p_kind text, p_id bigint) IS 'LISTEN channel of a stream: cti_ws_v1_<workstation id>_<secret part>, cti_emp_v1_<employee id>_<secret part>; clients get theirs from whoami_v1()';

CREATE FUNCTION cti.correlate_onlinepbx2(p_source text, p_fact cti.fact) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_call bigint;
    v_other bigint;
    v_caller text := cti.normalize_phone(p_fact.caller_raw);
    v_destination text := cti.normalize_phone(p_fact.destination_raw);
BEGIN
    SELECT call_id INTO v_call FROM cti.call_leg WHERE source = p_source AND leg_uuid = p_fact.leg;
    IF v_call IS NULL THEN  -- each side of a bridge through its own index (0017)
        SELECT b.call_id INTO v_call
          FROM (SELECT x.call_id FROM cti.call_bridge x WHERE x.leg_a = p_fact.leg
                UNION ALL
                SELECT x.call_id FROM cti.call_bridge x WHERE x.leg_b = p_fact.leg) b
         CROSS JOIN LATERAL (SELECT FROM cti.call c WHERE c.id = b.call_id AND c.source = p_source OFFSET 0) c
         LIMIT 1;
    END IF;

    IF p_fact.kind = 'bridged' THEN
        SELECT call_id INTO v_other FROM cti.call_leg WHERE source = p_source AND leg_uuid = p_fact.other_leg;
        IF v_call IS NOT NULL AND v_other IS NOT NULL AND v_call <> v_other THEN
            RETURN cti.merge_calls(least(v_call, v_other), greatest(v_call, v_other));
        END IF;
        v_call := coalesce(v_call, v_other);
    END IF;

    -- A new leg, or one only seen through an early answer or hangup (a call of its own so far).
    IF p_fact.kind = 'leg_created' AND (v_call IS NULL OR NOT EXISTS (
            SELECT FROM cti.call_leg WHERE call_id = v_call AND leg_uuid <> p_fact.leg))
       AND (cti.is_extension(v_destination) OR (cti.is_extension(v_caller) AND v_destination IS NOT NULL)) THEN
        -- The caller's open legs of the last minutes (an index of their own, 0018), not every
        -- leg; coalesce: an anonymous caller matches another anonymous one.
        SELECT l.call_id INTO v_other FROM cti.call_leg l JOIN cti.call c ON c.id = l.call_id
         WHERE l.source = p_source AND l.leg_uuid <> p_fact.leg AND l.ended_at IS NULL AND c.ended_at IS NULL
           AND coalesce(l.caller, '') = coalesce(v_caller, '')
           AND (cti.is_extension(v_destination) OR l.destination = v_destination)
           AND l.created_at BETWEEN p_fact.at - interval '10 minutes' AND p_fact.at + interval '1 minute'
         ORDER BY l.created_at DESC, l.call_id DESC LIMIT 1;
        IF v_other IS NOT NULL THEN
            RETURN CASE WHEN v_call IS NULL THEN v_other ELSE cti.merge_calls(v_other, v_call) END;
        END IF;
    END IF;

    IF v_call IS NULL THEN
        INSERT INTO cti.call AS c (source, pbx_call_id) VALUES (p_source, coalesce(p_fact.leg, p_fact.other_leg))
        ON CONFLICT (source, pbx_call_id) DO UPDATE SET source = c.source
        RETURNING c.id INTO v_call;
    END IF;
    RETURN v_call;
END
$$;

CREATE FUNCTION cti.crm_deals() RETURNS TABLE(client_id bigint, manager_id bigint, opened_at timestamp with time zone, won_at timestamp with time zone)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz WHERE false
$$;

COMMENT ON FUNCTION cti.crm_deals() IS 'Adapter: deals (client, manager, opened, won) for the sales funnel. Override for your CRM.';

CREATE FUNCTION cti.crm_employee_name(p_employee_id bigint) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_employee_name(p_employee_id bigint) IS 'Adapter: employee id -> the name people know them by, NULL when none. Override for your CRM.';

CREATE FUNCTION cti.crm_extension_for_channel(p_channel text) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT peer FROM substring(p_channel FROM '^[A-Za-z0-9]+/(.+)-[0-9a-fA-F]+(?:<[A-Z]+>)?$') AS peer
     WHERE peer ~ '^[0-9]+$'
$_$;

COMMENT ON FUNCTION cti.crm_extension_for_channel(p_channel text) IS 'Adapter (Asterisk): device channel -> extension, NULL for a trunk. Default: the peer name when all digits. Override for your PBX.';

CREATE FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) IS 'Adapter: employee id -> their extension (routing rings the client''s manager there), NULL when none. Override for your CRM.';

CREATE FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) IS 'Adapter: workstation id -> its extension (click-to-call dials from it), NULL when none. Override for your CRM.';

CREATE FUNCTION cti.crm_line_owner(p_dialled text) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_line_owner(p_dialled text) IS 'Adapter: the employee who calls back missed calls on line p_dialled, NULL when none. Override for your CRM.';

CREATE FUNCTION cti.crm_lookup(p_e164 text) RETURNS TABLE(client_id bigint, client_name text, company text, manager_id bigint, manager_surname text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint, NULL::text, NULL::text, NULL::bigint, NULL::text WHERE false
$$;

COMMENT ON FUNCTION cti.crm_lookup(p_e164 text) IS 'Adapter: clients owning an E.164 number (several rows = ambiguous). Override for your CRM.';

CREATE FUNCTION cti.crm_register_unknown(p_e164 text) RETURNS bigint
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_register_unknown(p_e164 text) IS 'Adapter: create a lead for an unknown E.164 number, return its client id (NULL: none). Override for your CRM.';

CREATE FUNCTION cti.crm_ring_recipients(p_dialled text) RETURNS SETOF bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint WHERE false
$$;

COMMENT ON FUNCTION cti.crm_ring_recipients(p_dialled text) IS 'Adapter: employee ids to notify of an incoming call on line p_dialled. Override for your CRM.';

CREATE FUNCTION cti.crm_workstation_for_extension(p_extension text) RETURNS bigint
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::bigint
$$;

COMMENT ON FUNCTION cti.crm_workstation_for_extension(p_extension text) IS 'Adapter: extension -> workstation id, NULL when none. Override for your CRM.';

CREATE FUNCTION cti.crm_workstation_name(p_workstation_id bigint) RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    -- pgcti placeholder: no CRM is connected yet
    SELECT NULL::text
$$;

COMMENT ON FUNCTION cti.crm_workstation_name(p_workstation_id bigint) IS 'Adapter: workstation id -> the name people know it by, NULL when none. Override for your CRM.';

CREATE FUNCTION cti.derive_call(p_call_id bigint, p_at timestamp with time zone, p_live boolean) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM cti.lock_calls(ARRAY[p_call_id]);
    PERFORM cti.send_commands((cti.derive_calls(ARRAY[p_call_id], ARRAY[p_at], ARRAY[0::bigint], p_live)).commands);
END
$$;

COMMENT ON FUNCTION cti.derive_call(p_call_id bigint, p_at timestamp with time zone, p_live boolean) IS 'Derive a call from its facts and send what changed (ring, open_card, close_card, call_ended); p_live=false sends nothing';

CREATE FUNCTION cti.derive_calls(p_calls bigint[], p_ats timestamp with time zone[], p_keys bigint[], p_live boolean) RETURNS cti.derivation_result
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    SET enable_memoize TO 'off'
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

COMMENT ON FUNCTION cti.derive_calls(p_calls bigint[], p_ats timestamp with time zone[], p_keys bigint[], p_live boolean) IS 'Derive a set of calls from their facts; returns the commands that follow from what changed (none when p_live=false)';

CREATE FUNCTION cti.detach_phone_column(p_table regclass, p_phone_column name) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_source cti.phone_source;
    v_statement text;
    v_drops text[];
    v_owner name;
BEGIN
    SELECT * INTO v_source FROM cti.phone_source WHERE table_name = p_table AND phone_column = p_phone_column;
    IF v_source.id IS NULL THEN
        RETURN;
    END IF;
    v_drops := coalesce(cti.phone_source_drop_trigger_sql(v_source), '{}');
    SELECT pg_get_userbyid(relowner) INTO v_owner FROM pg_class WHERE oid = p_table;
    IF cardinality(v_drops) > 0 AND NOT pg_has_role(v_owner, 'USAGE') THEN
        RAISE EXCEPTION 'only the owner of % (%) may drop pgcti''s triggers on it; nothing was changed', p_table, v_owner
            USING HINT = format('as %s, run: %s; then run this again', v_owner, array_to_string(v_drops, '; '));
    END IF;
    FOREACH v_statement IN ARRAY v_drops LOOP
        EXECUTE v_statement;
    END LOOP;
    DELETE FROM cti.phone_source WHERE id = v_source.id;
END
$$;

COMMENT ON FUNCTION cti.detach_phone_column(p_table regclass, p_phone_column name) IS 'Stop keeping a CRM phone column in the directory; drops its triggers';

CREATE FUNCTION cti.dial_claim_v1(p_edge text, p_limit integer DEFAULT 10) RETURNS TABLE(request_id uuid, extension text, number text, display_name text, expires_at timestamp with time zone)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

COMMENT ON FUNCTION cti.dial_claim_v1(p_edge text, p_limit integer) IS 'Edge API v1: claim waiting dial requests (state sent, committed before the edge sends them)';

CREATE TABLE cti.client_login (
    login name NOT NULL,
    workstation_id bigint,
    employee_id bigint,
    CONSTRAINT client_login_check CHECK (((workstation_id IS NOT NULL) OR (employee_id IS NOT NULL)))
);

COMMENT ON TABLE cti.client_login IS 'CRM client logins (members of cti_client) and the workstation / employee each one is';

CREATE FUNCTION cti.dial_for(p_binding cti.client_login, p_number text, p_client_id bigint) RETURNS uuid
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.dial_outcome_from_ami(p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION cti.dial_outcome_from_edge(p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.dial_outcome_from_onlinepbx2(p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE TABLE cti.dial_request (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    login name NOT NULL,
    workstation_id bigint NOT NULL,
    extension text NOT NULL,
    number text NOT NULL,
    client_id bigint,
    state text DEFAULT 'requested'::text NOT NULL,
    reason text,
    requested_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    sent_at timestamp with time zone,
    sent_by text,
    decided_at timestamp with time zone,
    CONSTRAINT dial_request_state_check CHECK ((state = ANY (ARRAY['requested'::text, 'sent'::text, 'answered'::text, 'failed'::text, 'expired'::text, 'unknown'::text])))
);

COMMENT ON TABLE cti.dial_request IS 'Click-to-call requests from desks: requested, sent (claimed by one edge, at most once), then answered, failed, expired or unknown';

CREATE FUNCTION cti.dial_request_call(p_request cti.dial_request, OUT call_id bigint, OUT link text) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.dial_requests_of(p_login name, p_since interval) RETURNS TABLE(request_id uuid, number text, client_id bigint, state text, reason text, requested_at timestamp with time zone, sent_at timestamp with time zone, decided_at timestamp with time zone, call_id bigint, call_link text, call_outcome text)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.dial_requests_v1(p_since interval DEFAULT '1 day'::interval) RETURNS TABLE(request_id uuid, number text, client_id bigint, state text, reason text, requested_at timestamp with time zone, sent_at timestamp with time zone, decided_at timestamp with time zone, call_id bigint, call_link text, call_outcome text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.dial_requests_of((cti.my_binding()).login, p_since) $$;

COMMENT ON FUNCTION cti.dial_requests_v1(p_since interval) IS 'Client API v1: my click-to-call requests, newest first: state, reason, the call placed';

CREATE FUNCTION cti.dial_v1(p_number text, p_client_id bigint DEFAULT NULL::bigint) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.dial_for(cti.my_binding(), p_number, p_client_id) $$;

COMMENT ON FUNCTION cti.dial_v1(p_number text, p_client_id bigint) IS 'Client API v1: place a call from my desk''s extension to a number (click-to-call); returns the request id';

CREATE FUNCTION cti.end_stale_calls(p_now timestamp with time zone, p_live boolean) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

COMMENT ON FUNCTION cti.end_stale_calls(p_now timestamp with time zone, p_live boolean) IS 'End calls silent for cti.config.stale_call_after (their end was lost); cards get call_ended';

CREATE FUNCTION cti.enqueue_all(p_commands cti.command[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    -- The queue's size: max_notify_queue_pages exists from PostgreSQL 17 (8 GB before).
    v_queue_bytes real := current_setting('max_notify_queue_pages', true)::real
                          * current_setting('block_size')::real;
    v_usage real;
    v_ring boolean;
    v_rung bigint;
BEGIN
    IF coalesce(cardinality(p_commands), 0) = 0 THEN
        RETURN;
    END IF;
    -- What the queue will hold once this transaction's doorbells (about 96 bytes each) are in.
    v_usage := pg_notification_queue_usage() + coalesce(cardinality(p_commands) * 96 / v_queue_bytes, 0);
    v_ring := v_usage <= (SELECT c.doorbell_max_queue_usage FROM cti.config c);
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
    SELECT count(CASE WHEN v_ring THEN
                     pg_notify(cti.channel_name(target_kind, target_id),
                               json_build_object('type', type, 'seq', seq, 'call_id', call_id)::text)
                 END)
      INTO v_rung
      FROM (SELECT * FROM numbered ORDER BY n) x;
    IF NOT v_ring THEN
        INSERT INTO cti.doorbell_skip (doorbells, queue_usage) VALUES (cardinality(p_commands), v_usage);
        RAISE WARNING 'NOTIFY queue % %% full: % doorbell(s) skipped; clients get the commands on their next pull',
                      round(v_usage::numeric * 100), cardinality(p_commands)
            USING ERRCODE = 'CTID1', DETAIL = cardinality(p_commands)::text,
                  HINT = 'a LISTEN connection that never reads holds the queue: see pg_stat_activity';
    END IF;
END
$$;

COMMENT ON FUNCTION cti.enqueue_all(p_commands cti.command[]) IS 'Append commands to their targets'' streams in order and ring the doorbells (type, seq, call id only)';

CREATE FUNCTION cti.epoch_v1() RETURNS text
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT s.system_identifier::text || '.' || ('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::int
      FROM pg_control_system() s
$$;

COMMENT ON FUNCTION cti.epoch_v1() IS 'Client API v1: the database''s history (system id.timeline); a change means sequence numbers may have restarted';

CREATE FUNCTION cti.facts_from_asterisk(p_frame jsonb, p_received timestamp with time zone) RETURNS SETOF cti.fact
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

COMMENT ON FUNCTION cti.facts_from_asterisk(p_frame jsonb, p_received timestamp with time zone) IS 'Asterisk AMI event block -> call facts (Linkedid = call, Uniqueid = leg); raises naming a missing field';

CREATE FUNCTION cti.facts_from_onlinepbx2(p_frame jsonb, p_received timestamp with time zone) RETURNS SETOF cti.fact
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_event text := p_frame ->> 'name';
    v_data jsonb := p_frame -> 'args' -> 0;
    v_fact cti.fact;
    v_leg text;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "name"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fact := cti.ignored_event(
        v_event,
        ARRAY['callback', 'registration', 'channel_application', 'messages', 'api'],
        ARRAY['channel_create', 'channel_answer', 'channel_bridge', 'channel_hold', 'channel_unhold',
              'channel_destroy', 'blf']);
    IF v_fact.kind = 'ignored' THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_data := cti.required_object(v_data, v_event, 'args[0]');

    v_fact.at := p_received;
    IF v_event = 'channel_bridge' THEN
        v_fact.kind := 'bridged';
        v_fact.leg := cti.required_field(v_data, 'aleg_uuid', v_event, 'args[0]');
        v_fact.other_leg := cti.required_field(v_data, 'bleg_uuid', v_event, 'args[0]');
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_leg := cti.required_field(v_data, 'uuid', v_event, 'args[0]');
    IF v_event = 'blf' THEN
        -- "answered" is who picked up (uid = the extension); ringing and hangup repeat the leg events.
        IF v_data ->> 'status' = 'answered' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(v_data -> 'timestamp', p_received);
        ELSE
            v_fact.kind := 'ignored';
            v_fact.note := format('blf "%s" repeats what the channel events say', left(v_data ->> 'status', 40));
        END IF;
    ELSE
        -- 2.0 has no end time stamp: a leg ends when its destroy event arrives.
        v_fact := cti.onlinepbx_leg_fact(v_event, v_data, p_received, 'timestamp', NULL);
    END IF;
    v_fact.leg := v_leg;
    RETURN NEXT v_fact;
END
$$;

COMMENT ON FUNCTION cti.facts_from_onlinepbx2(p_frame jsonb, p_received timestamp with time zone) IS 'onlinePBX WebSocket API 2.0 event -> call facts (without call ids); raises naming a missing field';

CREATE FUNCTION cti.facts_from_onlinepbx3(p_frame jsonb, p_received timestamp with time zone) RETURNS SETOF cti.fact
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_event text := p_frame ->> 'event';
    v_data jsonb := p_frame -> 'data';
    v_fact cti.fact;
    v_uuids jsonb;
    v_leg text;
BEGIN
    IF v_event IS NULL THEN
        RAISE EXCEPTION 'frame lacks field "event"' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_fact := cti.ignored_event(
        v_event,
        ARRAY['subscribed', 'unsubscribed', 'error_subscribe', 'transferred', 'bridged',
              'user_blf', 'user_registration', 'gateway'],
        ARRAY['channel_create', 'channel_answer', 'channel_bridge', 'channel_unbridge',
              'channel_hold', 'channel_unhold', 'channel_destroy', 'call_end']);
    IF v_fact.kind = 'ignored' THEN
        RETURN NEXT v_fact;
        RETURN;
    END IF;
    v_data := cti.required_object(v_data, v_event, 'data');

    v_fact.at := p_received;
    IF v_event = 'call_end' THEN
        v_fact.kind := 'call_ended';
        v_fact.call_key := coalesce(nullif(v_data ->> 'call_uuid', ''), cti.required_field(v_data, 'uuid', v_event));
        v_fact.at := cti.pbx_time(v_data -> 'end_stamp', p_received);
        v_fact.cause := v_data ->> 'hangup_cause';
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_fact.call_key := cti.required_field(v_data, 'call_uuid', v_event);
    IF v_event IN ('channel_bridge', 'channel_unbridge') THEN
        v_uuids := v_data -> 'uuids';
        IF v_uuids IS NULL OR jsonb_typeof(v_uuids) <> 'array' OR jsonb_array_length(v_uuids) < 2 THEN
            RAISE EXCEPTION '% frame lacks field "data.uuids" (an array of two leg ids)', v_event
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF v_event = 'channel_unbridge' THEN
            v_fact.kind := 'ignored';
            v_fact.note := 'channel_unbridge: who holds the call is decided by the next bridge or the hangup';
            RETURN NEXT v_fact;
            RETURN;
        END IF;
        v_fact.kind := 'bridged';
        v_fact.leg := v_uuids ->> 0;
        v_fact.other_leg := v_uuids ->> 1;
        RETURN NEXT v_fact;
        RETURN;
    END IF;

    v_leg := cti.required_field(v_data, 'uuid', v_event);
    v_fact := cti.onlinepbx_leg_fact(v_event, v_data, p_received, 'answered_stamp', 'end_stamp');
    v_fact.call_key := v_data ->> 'call_uuid';
    v_fact.leg := v_leg;
    RETURN NEXT v_fact;
END
$$;

COMMENT ON FUNCTION cti.facts_from_onlinepbx3(p_frame jsonb, p_received timestamp with time zone) IS 'onlinePBX WebSocket API 3.0 frame -> call facts; raises naming a missing field';

CREATE FUNCTION cti.gateway_ack(p_token text, p_stream text, p_seq bigint) RETURNS bigint
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.gateway_ack_v1(p_token, p_stream, p_seq) $$;

CREATE FUNCTION cti.gateway_ack_v1(p_token text, p_stream text, p_seq bigint) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    RETURN (SELECT cti.ack(CASE p_stream WHEN 'commands' THEN 'ws' ELSE 'emp' END,
                           CASE p_stream WHEN 'commands' THEN b.workstation_id ELSE b.employee_id END, p_seq)
              FROM cti.token_binding(p_token) b
             WHERE p_stream IN ('commands', 'notifications'));
END
$$;

COMMENT ON FUNCTION cti.gateway_ack_v1(p_token text, p_stream text, p_seq bigint) IS 'Gateway: acknowledge one of the token''s streams';

CREATE FUNCTION cti.gateway_contacts(p_token text, p_call_id bigint, p_limit integer DEFAULT 5) RETURNS TABLE(call_id bigint, started_at timestamp with time zone, direction text, outcome text, answered_by text, duration interval)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.gateway_contacts_v1(p_token, p_call_id, p_limit) $$;

CREATE FUNCTION cti.gateway_contacts_v1(p_token text, p_call_id bigint, p_limit integer DEFAULT 5) RETURNS TABLE(call_id bigint, started_at timestamp with time zone, direction text, outcome text, answered_by text, duration interval)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT h.id, h.started_at, h.direction, h.outcome, h.answered_by,
           h.ended_at - coalesce(h.answered_at, h.started_at)
      FROM cti.token_binding(p_token) b
      JOIN cti.call c ON c.id = p_call_id
     CROSS JOIN LATERAL (SELECT * FROM cti.call h
                          WHERE h.id <> c.id
                            AND CASE WHEN c.client_id IS NOT NULL THEN h.client_id = c.client_id
                                     ELSE h.external_number = c.external_number END
                          ORDER BY h.started_at DESC NULLS LAST
                          LIMIT least(greatest(p_limit, 1), 20)) h
     WHERE EXISTS (SELECT FROM cti.outbox o WHERE o.target_kind = 'ws' AND o.target_id = b.workstation_id
                                              AND o.call_id = p_call_id AND o.type = 'open_card')
$$;

COMMENT ON FUNCTION cti.gateway_contacts_v1(p_token text, p_call_id bigint, p_limit integer) IS 'Gateway: the last contacts with the caller of a call whose card the token''s desk was sent';

CREATE FUNCTION cti.gateway_desk_v1(p_token text) RETURNS TABLE(login name, workstation_id bigint, name text, extension text, presence text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT b.login, b.workstation_id,
           coalesce(cti.crm_workstation_name(b.workstation_id), 'workstation ' || b.workstation_id),
           x.extension, coalesce((SELECT cti.presence_state(p) FROM cti.presence p WHERE p.extension = x.extension), 'unknown')
      FROM cti.token_binding(p_token) b
     CROSS JOIN LATERAL (SELECT cti.crm_extension_for_workstation(b.workstation_id) AS extension) x
$$;

COMMENT ON FUNCTION cti.gateway_desk_v1(p_token text) IS 'Gateway: the token''s desk by name and extension, and its presence';

CREATE FUNCTION cti.gateway_dial_requests_v1(p_token text) RETURNS TABLE(request_id uuid, number text, client_id bigint, state text, reason text, requested_at timestamp with time zone, sent_at timestamp with time zone, decided_at timestamp with time zone, call_id bigint, call_link text, call_outcome text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.dial_requests_of((cti.token_binding(p_token)).login, interval '1 hour') $$;

COMMENT ON FUNCTION cti.gateway_dial_requests_v1(p_token text) IS 'Gateway: the token''s desk''s dial requests of the last hour';

CREATE FUNCTION cti.gateway_dial_v1(p_token text, p_number text, p_client_id bigint DEFAULT NULL::bigint) RETURNS uuid
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.dial_for(cti.token_binding(p_token), p_number, p_client_id) $$;

COMMENT ON FUNCTION cti.gateway_dial_v1(p_token text, p_number text, p_client_id bigint) IS 'Gateway: the token''s desk places a call (dial_v1 by token)';

CREATE FUNCTION cti.gateway_pull(p_token text, p_stream text, p_after bigint DEFAULT NULL::bigint, p_limit integer DEFAULT 100) RETURNS TABLE(seq bigint, type text, call_id bigint, payload jsonb, created_at timestamp with time zone)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.gateway_pull_v1(p_token, p_stream, p_after, p_limit) $$;

CREATE FUNCTION cti.gateway_pull_v1(p_token text, p_stream text, p_after bigint DEFAULT NULL::bigint, p_limit integer DEFAULT 100) RETURNS TABLE(seq bigint, type text, call_id bigint, payload jsonb, created_at timestamp with time zone)
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    v_binding cti.client_login := cti.token_binding(p_token);
    v_kind text := CASE p_stream WHEN 'commands' THEN 'ws' ELSE 'emp' END;
    v_id bigint := CASE p_stream WHEN 'commands' THEN v_binding.workstation_id ELSE v_binding.employee_id END;
    v_acked bigint;
    v_floor bigint;
BEGIN
    IF p_stream NOT IN ('commands', 'notifications') THEN
        RETURN;
    END IF;
    SELECT a.acked_seq INTO v_acked FROM cti.stream_ack a WHERE a.target_kind = v_kind AND a.target_id = v_id;
    -- The newest acknowledged item older than the read-back window: nothing up to it is read.
    SELECT o.seq INTO v_floor FROM cti.outbox o
     WHERE o.target_kind = v_kind AND o.target_id = v_id AND o.seq <= coalesce(v_acked, 0)
       AND o.created_at <= now() - interval '2 minutes'
     ORDER BY o.seq DESC LIMIT 1;
    RETURN QUERY
    SELECT p.* FROM cti.pull(v_kind, v_id, greatest(coalesce(p_after, v_acked, 0), coalesce(v_floor, 0)), p_limit) p;
END
$$;

COMMENT ON FUNCTION cti.gateway_pull_v1(p_token text, p_stream text, p_after bigint, p_limit integer) IS 'Gateway: pull one of the token''s streams (commands or notifications)';

CREATE FUNCTION cti.gateway_recording_v1(p_token text, p_call_id bigint) RETURNS TABLE(file text, allowed boolean, why text)
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT r.file, r.allowed, r.why FROM cti.gateway_recording_v2(p_token, p_call_id) r $$;

COMMENT ON FUNCTION cti.gateway_recording_v1(p_token text, p_call_id bigint) IS 'Gateway (release before): a call''s recording file for a token, if it may hear it; every request logged';

CREATE FUNCTION cti.gateway_recording_v2(p_token text, p_call_id bigint) RETURNS TABLE(source text, file text, allowed boolean, why text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
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

COMMENT ON FUNCTION cti.gateway_recording_v2(p_token text, p_call_id bigint) IS 'Gateway: a call''s recording (the PBX and its reference) for a desk or supervisor token, if it may hear it; every request logged';

CREATE FUNCTION cti.gateway_route_v1(p_token text, p_caller text, p_dialled text DEFAULT NULL::text) RETURNS TABLE(extension text, reason text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM cti.live_token(p_token, 'router');
    RETURN QUERY SELECT * FROM cti.route_v1(p_caller, p_dialled);
END
$$;

COMMENT ON FUNCTION cti.gateway_route_v1(p_token text, p_caller text, p_dialled text) IS 'Gateway: route_v1 for a router token (GET /route)';

CREATE FUNCTION cti.gateway_set_presence_v1(p_token text, p_state text, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.set_desk_presence(cti.token_binding(p_token), p_state, p_until) $$;

COMMENT ON FUNCTION cti.gateway_set_presence_v1(p_token text, p_state text, p_until timestamp with time zone) IS 'Gateway: the token''s desk sets its presence (set_presence_v1 by token)';

CREATE FUNCTION cti.gateway_tokens_v1() RETURNS TABLE(token_id bigint, scope text, login name, issued_by name, issued_at timestamp with time zone, expires_at timestamp with time zone, revoked_at timestamp with time zone, live boolean)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT t.id, t.scope, t.login, t.issued_by, t.issued_at, t.expires_at, t.revoked_at,
           t.revoked_at IS NULL AND t.expires_at > now()
           AND (t.scope <> 'desk' OR (cti.may_log_in(t.login, t.login_oid)
                                      AND EXISTS (SELECT FROM cti.client_login b WHERE b.login = t.login)))
      FROM cti.gateway_token t
     ORDER BY t.issued_at DESC, t.id DESC
$$;

COMMENT ON FUNCTION cti.gateway_tokens_v1() IS 'Every browser token (no secret): scope, login, issuer, expiry, revocation, and whether it is live now';

CREATE FUNCTION cti.gateway_wallboard(p_token text) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.gateway_wallboard_v1(p_token) $$;

CREATE FUNCTION cti.gateway_wallboard_v1(p_token text) RETURNS jsonb
    LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM cti.live_token(p_token, 'wallboard');
    RETURN jsonb_build_object(
        'at', now(),
        'lines', coalesce((
            -- talking_without_desk: answered on an extension no desk is bound to, so that
            -- the lines' talking and the desks' talking can be told apart.
            SELECT jsonb_agg(jsonb_build_object('line', l.line, 'ringing', l.ringing, 'talking', l.talking,
                                                'talking_without_desk', l.talking_without_desk) ORDER BY l.line)
              FROM (SELECT coalesce(c.dialled, 'outbound') AS line,
                           count(*) FILTER (WHERE c.answered_at IS NULL AND c.direction = 'inbound') AS ringing,
                           count(*) FILTER (WHERE c.answered_at IS NOT NULL) AS talking,
                           count(*) FILTER (WHERE c.answered_at IS NOT NULL AND c.card_workstation_id IS NULL) AS talking_without_desk
                      FROM cti.call c WHERE c.ended_at IS NULL AND c.direction IN ('inbound', 'outbound')
                     GROUP BY 1) l), '[]'),
        'desks', coalesce((
            SELECT jsonb_agg(jsonb_build_object('workstation_id', w.id, 'name', coalesce(cti.crm_workstation_name(w.id), 'workstation ' || w.id),
                                                'state', CASE WHEN c.id IS NULL THEN 'idle' ELSE 'talking' END,
                                                'extension', coalesce(c.holder_extension, w.extension), 'since', c.answered_at,
                                                'presence', coalesce(cti.presence_state(p), 'unknown'),
                                                'presence_since', cti.presence_since(p)) ORDER BY w.id)
              FROM (SELECT d.id, cti.crm_extension_for_workstation(d.id) AS extension
                      FROM (SELECT DISTINCT b.workstation_id AS id FROM cti.client_login b WHERE b.workstation_id IS NOT NULL) d) w
              LEFT JOIN cti.presence p ON p.extension = w.extension
              LEFT JOIN LATERAL (SELECT * FROM cti.call c WHERE c.ended_at IS NULL AND c.card_workstation_id = w.id
                                  ORDER BY c.answered_at LIMIT 1) c ON true), '[]'),
        -- Queues now: callers waiting and the longest wait; the agents seen in the queue
        -- today by their presence; today's service level (86_queue_analytics.sql).
        'queues', coalesce((
            SELECT jsonb_agg(jsonb_build_object('queue', q.queue, 'waiting', q.waiting,
                                                'longest_wait_seconds', q.longest_wait,
                                                'agents_free', a.free, 'agents_paused', a.paused, 'agents_talking', a.talking,
                                                'service_level_today', st.service_level, 'offered_today', st.offered)
                             ORDER BY q.queue)
              FROM (SELECT c.queue,
                           count(*) FILTER (WHERE c.connected_at IS NULL AND c.abandoned_at IS NULL AND c.left_at IS NULL) AS waiting,
                           round(max(extract(epoch FROM now() - c.joined_at))
                                 FILTER (WHERE c.connected_at IS NULL AND c.abandoned_at IS NULL AND c.left_at IS NULL)) AS longest_wait
                      FROM cti.queue_call c WHERE c.joined_at >= current_date GROUP BY c.queue) q
              LEFT JOIN LATERAL (
                    SELECT count(*) FILTER (WHERE s.state IN ('available', 'unknown')) AS free,
                           count(*) FILTER (WHERE s.state = 'paused') AS paused,
                           count(*) FILTER (WHERE s.state = 'busy') AS talking
                      FROM (SELECT DISTINCT t.agent FROM cti.queue_attempt t
                             WHERE t.queue = q.queue AND t.called_at >= current_date AND t.agent IS NOT NULL) m
                      LEFT JOIN cti.presence p ON p.extension = m.agent
                     CROSS JOIN LATERAL (SELECT coalesce(cti.presence_state(p), 'unknown') AS state) s) a ON true
              LEFT JOIN cti.queue_stats_between(current_date, current_date + 1) st  -- today's stays only
                     ON st.queue = q.queue AND st.hour IS NULL), '[]'),
        -- The oldest 20 tasks past due, with the client and the owner by name (the CRM's, else
        -- the lookup's for a client's manager); the total beside them.
        'tasks_past_due', coalesce((
            SELECT jsonb_agg(jsonb_build_object('task_id', t.id, 'number', t.e164, 'owner_id', t.owner_id,
                                                'owner', coalesce(cti.crm_employee_name(t.owner_id),
                                                                  CASE WHEN t.owner_rule = 'manager' THEN k.client_card ->> 'manager_surname' END),
                                                'client', k.client_card ->> 'client_name',
                                                'due_at', t.due_at, 'missed_calls', t.missed_calls) ORDER BY t.due_at, t.id)
              FROM (SELECT * FROM cti.callback_task t WHERE t.closed_at IS NULL AND t.due_at < now()
                     ORDER BY t.due_at, t.id LIMIT 20) t
              LEFT JOIN cti.call k ON k.id = t.last_call_id), '[]'),
        'tasks_past_due_total', (SELECT count(*) FROM cti.callback_task t WHERE t.closed_at IS NULL AND t.due_at < now()),
        -- Today (the database's time zone): inbound calls answered and ended unanswered, and
        -- the callback tasks of today's missed calls still open.
        'today', (SELECT jsonb_build_object(
                      'answered', count(*) FILTER (WHERE c.answered_at IS NOT NULL),
                      'missed', count(*) FILTER (WHERE c.answered_at IS NULL AND c.outcome IN ('missed', 'abandoned', 'busy', 'rejected')),
                      'not_called_back', (SELECT count(*) FROM cti.callback_task t
                                           WHERE t.closed_at IS NULL AND t.created_at >= current_date))
                    FROM cti.call c WHERE c.direction = 'inbound' AND c.started_at >= current_date));
END
$$;

COMMENT ON FUNCTION cti.gateway_wallboard_v1(p_token text) IS 'Gateway: the floor now for a wallboard token (lines, desks, queues, callback tasks past due, today''s figures)';

CREATE FUNCTION cti.gateway_whoami(p_token text) RETURNS TABLE(login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.gateway_whoami_v1(p_token) $$;

CREATE FUNCTION cti.gateway_whoami_v1(p_token text) RETURNS TABLE(login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.streams_of(cti.token_binding(p_token)) $$;

COMMENT ON FUNCTION cti.gateway_whoami_v1(p_token text) IS 'Gateway: the token''s login, streams and channels (whoami_v1 by token)';

CREATE FUNCTION cti.identify_client(p_call cti.call, p_register boolean) RETURNS TABLE(client_id bigint, client_match text, candidates bigint[], card jsonb)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.ignored_event(p_event text, p_no_fact text[], p_handled text[]) RETURNS cti.fact
    LANGUAGE sql STABLE
    RETURN CASE WHEN (p_event <> ALL (p_handled)) THEN jsonb_populate_record(NULL::cti.fact, jsonb_build_object('kind', 'ignored', 'note', CASE WHEN (p_event = ANY (p_no_fact)) THEN format('event "%s" carries no call fact'::text, p_event) ELSE format('unknown event type "%s"'::text, "left"(p_event, 100)) END)) ELSE NULL::cti.fact END;

CREATE FUNCTION cti.ingest_frames_v1(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    v_stored bigint;
BEGIN
    INSERT INTO cti.raw_event (source, received_at, body, frame, dedup_key, parse_error)
    SELECT p.source, p.received_at, p.body, p.frame, p.dedup_key, p.parse_error
      FROM cti.parse_frames(p_sources, p_received, p_bodies) p
     ORDER BY p.n
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS v_stored = ROW_COUNT;
    RETURN v_stored;
END
$$;

COMMENT ON FUNCTION cti.ingest_frames_v1(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) IS 'Store a batch of PBX frames (source, received time, body) in order; duplicates are skipped; returns how many were new';

CREATE FUNCTION cti.is_extension(p_normalized text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN ((p_normalized IS NOT NULL) AND ("left"(p_normalized, 1) <> '+'::text));

CREATE FUNCTION cti.issue_gateway_token_v1(p_login name DEFAULT SESSION_USER, p_valid interval DEFAULT '12:00:00'::interval) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF p_login <> session_user AND NOT pg_has_role(session_user, 'cti_owner', 'USAGE') THEN
        RAISE EXCEPTION 'only a DBA issues tokens for another login'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM cti.client_login WHERE login = p_login) THEN
        RAISE EXCEPTION 'login "%" is not bound to a workstation or employee', p_login
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN cti.new_token('desk', p_login, p_valid,
                         CASE WHEN pg_has_role(session_user, 'cti_owner', 'USAGE') THEN interval '90 days'
                              ELSE interval '24 hours' END);
END
$$;

COMMENT ON FUNCTION cti.issue_gateway_token_v1(p_login name, p_valid interval) IS 'A browser token for a desk login (shown once; the database keeps its hash)';

CREATE FUNCTION cti.issue_router_token_v1(p_valid interval DEFAULT '365 days'::interval) RETURNS text
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.new_token('router', NULL, p_valid, interval '730 days') $$;

COMMENT ON FUNCTION cti.issue_router_token_v1(p_valid interval) IS 'A token for the gateway''s /route (a PBX asking which extension to ring first); shown once';

CREATE FUNCTION cti.issue_supervisor_token_v1(p_valid interval DEFAULT '12:00:00'::interval) RETURNS text
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.new_token('supervisor', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_supervisor_token_v1(p_valid interval) IS 'A token that hears every call recording through the gateway (a supervisor); shown once';

CREATE FUNCTION cti.issue_wallboard_token_v1(p_valid interval DEFAULT '30 days'::interval) RETURNS text
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.new_token('wallboard', NULL, p_valid, interval '90 days') $$;

COMMENT ON FUNCTION cti.issue_wallboard_token_v1(p_valid interval) IS 'A token for the supervisor wallboard (shown once; the database keeps its hash)';

CREATE FUNCTION cti.json_error(p_body text) RETURNS text
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF current_setting('server_version_num')::int < 160000 THEN
        RETURN cti.json_error_by_cast(p_body);
    ELSIF pg_input_is_valid(p_body, 'jsonb') THEN
        RETURN NULL;
    END IF;
    RETURN (pg_input_error_info(p_body, 'jsonb')).message;
END
$$;

CREATE FUNCTION cti.json_error_by_cast(p_body text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM p_body::jsonb;
    RETURN NULL;
EXCEPTION WHEN others THEN
    RETURN SQLERRM;
END
$$;

CREATE TABLE cti.gateway_token (
    id bigint NOT NULL,
    token_sha256 bytea NOT NULL,
    scope text DEFAULT 'desk'::text NOT NULL,
    login name,
    issued_by name DEFAULT SESSION_USER NOT NULL,
    issued_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    login_oid oid,
    CONSTRAINT gateway_token_check CHECK (((scope = 'desk'::text) = (login IS NOT NULL))),
    CONSTRAINT gateway_token_scope_check CHECK ((scope = ANY (ARRAY['desk'::text, 'wallboard'::text, 'router'::text, 'supervisor'::text])))
);

COMMENT ON TABLE cti.gateway_token IS 'Browser tokens: the hash, the desk login it acts for (or the supervisor wallboard), expiry, revocation';

COMMENT ON COLUMN cti.gateway_token.login_oid IS 'The desk login''s role when the token was issued: a token dies with it';

CREATE FUNCTION cti.live_token(p_token text, p_scope text) RETURNS cti.gateway_token
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_token cti.gateway_token;
BEGIN
    SELECT t.* INTO v_token FROM cti.gateway_token t
     WHERE t.token_sha256 = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
       AND t.scope = p_scope AND t.revoked_at IS NULL AND t.expires_at > now()
       AND (t.scope <> 'desk' OR cti.may_log_in(t.login, t.login_oid));
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: unknown, expired or revoked, or not a % token', p_scope
            USING ERRCODE = 'invalid_authorization_specification',
                  HINT = 'Ask for a new token: SELECT cti.issue_gateway_token_v1(...)';
    END IF;
    RETURN v_token;
END
$$;

CREATE FUNCTION cti.lock_calls(p_calls bigint[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
BEGIN
    PERFORM FROM (SELECT DISTINCT i.id FROM unnest(p_calls) i(id) ORDER BY i.id) i
      CROSS JOIN LATERAL (SELECT FROM cti.call c WHERE c.id = i.id FOR UPDATE) c;
END
$$;

COMMENT ON FUNCTION cti.lock_calls(p_calls bigint[]) IS 'Lock these calls (in id order: no deadlock between two sets)';

CREATE FUNCTION cti.manager_summary_v1(p_first date, p_last date) RETURNS TABLE(employee_id bigint, extension text, calls_taken bigint, their_calls bigint, answered bigint, missed bigint, answer_rate numeric, callbacks_made bigint, time_to_callback_p50 interval, time_to_callback_p90 interval, never_called_back bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH calls AS (
        SELECT (cti.callback_owner(c)).owner_id AS employee_id, c.answered_at IS NOT NULL AS answered,
               c.answered_at IS NULL AND c.outcome IN ('missed', 'abandoned', 'busy', 'rejected') AS unanswered
          FROM cti.call c
         WHERE c.direction = 'inbound' AND c.started_at::date BETWEEN p_first AND p_last
    ), per_calls AS (
        SELECT k.employee_id, count(*) FILTER (WHERE k.answered) AS answered,
               count(*) FILTER (WHERE k.unanswered) AS missed
          FROM calls k WHERE k.employee_id IS NOT NULL
         GROUP BY k.employee_id
    ), per_tasks AS (
        SELECT t.owner_id AS employee_id,
               count(*) FILTER (WHERE t.closed_how = 'outbound_answered') AS callbacks_made,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY b.answered_at - t.created_at)
                   FILTER (WHERE t.closed_how = 'outbound_answered') AS p50,
               percentile_cont(0.9) WITHIN GROUP (ORDER BY b.answered_at - t.created_at)
                   FILTER (WHERE t.closed_how = 'outbound_answered') AS p90,
               count(*) FILTER (WHERE t.closed_how IS NULL AND t.due_at < now()) AS never_called_back
          FROM cti.callback_task t
          LEFT JOIN cti.call b ON b.id = t.closed_by_call_id
         WHERE t.owner_id IS NOT NULL AND cti.task_day(t) BETWEEN p_first AND p_last
         GROUP BY t.owner_id
    ), people AS (  -- each employee's extension, asked once
        SELECT p.employee_id, cti.crm_extension_for_employee(p.employee_id) AS extension
          FROM (SELECT k.employee_id FROM per_calls k UNION SELECT t.employee_id FROM per_tasks t) p
    ), taken AS (
        SELECT c.answered_by AS extension, count(*) AS calls_taken
          FROM cti.call c
         WHERE c.direction = 'inbound' AND c.answered_by IS NOT NULL
           AND c.started_at::date BETWEEN p_first AND p_last
         GROUP BY c.answered_by
    )
    SELECT p.employee_id, p.extension, coalesce(x.calls_taken, 0),
           coalesce(k.answered, 0) + coalesce(k.missed, 0), coalesce(k.answered, 0), coalesce(k.missed, 0),
           round(k.answered::numeric / nullif(k.answered + k.missed, 0), 3),
           coalesce(t.callbacks_made, 0), t.p50, t.p90, coalesce(t.never_called_back, 0)
      FROM people p
      LEFT JOIN per_calls k ON k.employee_id = p.employee_id
      LEFT JOIN per_tasks t ON t.employee_id = p.employee_id
      LEFT JOIN taken x ON x.extension = p.extension
$$;

COMMENT ON FUNCTION cti.manager_summary_v1(p_first date, p_last date) IS 'Per employee responsible for calls (their callback owner) over a period: calls taken at their extension, their calls answered and missed, answer rate, callbacks made, time to callback p50/p90, never called back';

CREATE FUNCTION cti.may_hear(p_binding cti.client_login, p_supervisor boolean, p_call cti.call, OUT allowed boolean, OUT why text) RETURNS record
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.may_log_in(p_login name, p_login_oid oid) RETURNS boolean
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT EXISTS (SELECT FROM pg_catalog.pg_roles r
                    WHERE r.rolname = p_login AND r.oid = coalesce(p_login_oid, r.oid)
                      AND r.rolcanlogin AND coalesce(r.rolvaliduntil > now(), true))
$$;

CREATE FUNCTION cti.merge_calls(p_keep bigint, p_gone bigint) RETURNS bigint
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.my_binding() RETURNS cti.client_login
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_binding cti.client_login;
BEGIN
    SELECT * INTO v_binding FROM cti.client_login WHERE login = session_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'login "%" is not bound to a workstation or employee', session_user
            USING HINT = 'A DBA adds it: INSERT INTO cti.client_login (login, workstation_id, employee_id) ...',
                  ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN v_binding;
END
$$;

CREATE FUNCTION cti.new_token(p_scope text, p_login name, p_valid interval, p_max_valid interval DEFAULT '90 days'::interval) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_token text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
BEGIN
    IF p_valid IS NULL OR p_valid <= interval '0' OR p_valid > p_max_valid THEN
        RAISE EXCEPTION 'a token is valid for more than 0 and at most %, not %', p_max_valid, p_valid
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_login IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('cti.gateway_token'), hashtext(p_login));
        UPDATE cti.gateway_token SET revoked_at = now()
         WHERE id IN (SELECT id FROM cti.gateway_token
                       WHERE login = p_login AND revoked_at IS NULL AND expires_at > now()
                       ORDER BY issued_at DESC, id DESC OFFSET 4);
    END IF;
    INSERT INTO cti.gateway_token (token_sha256, scope, login, login_oid, expires_at)
    VALUES (sha256(convert_to(v_token, 'UTF8')), p_scope, p_login,
            (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = p_login), now() + p_valid);
    RETURN v_token;
END
$$;

CREATE FUNCTION cti.normalize_phone(p_raw text) RETURNS text
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_cfg cti.config;
BEGIN
    IF p_raw ~ '^\+?[0-9]{1,15}$' THEN  -- what PBXs send: no parsing needed
        SELECT * INTO v_cfg FROM cti.config;
        RETURN cti.phone_from_digits(p_raw, v_cfg);
    END IF;
    RETURN (SELECT n.number FROM cti.phone_numbers(p_raw) n LIMIT 1);
END
$_$;

COMMENT ON FUNCTION cti.normalize_phone(p_raw text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension; rules in cti.config';

CREATE FUNCTION cti.normalize_phone_v1(p_raw text) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN cti.normalize_phone(p_raw);

COMMENT ON FUNCTION cti.normalize_phone_v1(p_raw text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension (client API)';

CREATE FUNCTION cti.onlinepbx_leg_fact(p_event text, p_data jsonb, p_received timestamp with time zone, p_answered_field text, p_ended_field text) RETURNS cti.fact
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_fact cti.fact;
BEGIN
    v_fact.at := p_received;
    CASE p_event
        WHEN 'channel_create' THEN
            v_fact.kind := 'leg_created';
            v_fact.at := cti.pbx_time(p_data -> 'created_stamp', p_received);
            v_fact.caller_raw := p_data ->> 'caller_number';
            v_fact.destination_raw := p_data ->> 'destination_number';
        WHEN 'channel_answer' THEN
            v_fact.kind := 'leg_answered';
            v_fact.at := cti.pbx_time(p_data -> p_answered_field, p_received);
        WHEN 'channel_hold' THEN
            v_fact.kind := 'leg_hold';
        WHEN 'channel_unhold' THEN
            v_fact.kind := 'leg_unhold';
        WHEN 'channel_destroy' THEN
            v_fact.kind := 'leg_ended';
            v_fact.at := cti.pbx_time(p_data -> p_ended_field, p_received);
            v_fact.cause := p_data ->> 'hangup_cause';
    END CASE;
    RETURN v_fact;
END
$$;

CREATE FUNCTION cti.onlinepbx_presence_event(p_frame jsonb) RETURNS boolean
    LANGUAGE sql IMMUTABLE
    RETURN (COALESCE((p_frame ->> 'event'::text), (p_frame ->> 'name'::text)) = ANY (ARRAY['blf'::text, 'registration'::text, 'user_blf'::text, 'user_registration'::text]));

CREATE FUNCTION cti.pair_bridge_legs(p_source text, p_bridges text[]) RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_pair record;
    v_a bigint;
    v_b bigint;
    v_calls bigint[] := '{}';
BEGIN
    IF cardinality(p_bridges) = 0 THEN
        RETURN v_calls;
    END IF;
    FOR v_pair IN
        -- Every lookup by key (OFFSET 0 keeps each one a lookup): a plan made while the table
        -- was small read all of it for each bridge, 9 ms a call after 2,000 blocks (see
        -- lab note 2026-11-27-plans-made-on-empty-tables).
        WITH bridge AS (
            SELECT b.bridge_id FROM unnest(p_bridges) AS b(bridge_id)
            UNION  -- the bridge at the other end of a Local/ wire
            SELECT o.bridge_id FROM unnest(p_bridges) AS b(bridge_id)
             CROSS JOIN LATERAL (SELECT w.member FROM cti.ami_bridge_member w
                                  WHERE w.source = p_source AND w.bridge_id = b.bridge_id AND w.is_local OFFSET 0) w
             CROSS JOIN LATERAL (SELECT o.bridge_id FROM cti.ami_bridge_member o
                                  WHERE o.source = p_source AND o.member = w.member OFFSET 0) o
        ),
        stay AS (
            -- A stay from its enter to its leave; an end not seen (yet) is open.
            SELECT m.bridge_id, m.member, m.is_local,
                   coalesce(m.entered_at, '-infinity') AS s_at, coalesce(m.entered_seq, 0) AS s_seq,
                   coalesce(m.left_at, 'infinity') AS e_at, coalesce(m.left_seq, 9223372036854775807) AS e_seq,
                   coalesce(m.entered_at, m.left_at) AS at
              FROM bridge b
             CROSS JOIN LATERAL (SELECT * FROM cti.ami_bridge_member m
                                  WHERE m.source = p_source AND m.bridge_id = b.bridge_id OFFSET 0) m
        ),
        pair AS (
            SELECT a.member AS leg_a, b.member AS leg_b, greatest(a.at, b.at) AS at, a.s_at, a.s_seq, a.e_at, a.e_seq,
                   b.s_at AS b_s_at, b.s_seq AS b_s_seq, b.e_at AS b_e_at, b.e_seq AS b_e_seq
              FROM stay a JOIN stay b ON b.bridge_id = a.bridge_id AND a.member < b.member
             WHERE NOT a.is_local AND NOT b.is_local
               AND (a.s_at, a.s_seq) < (b.e_at, b.e_seq) AND (b.s_at, b.s_seq) < (a.e_at, a.e_seq)
            UNION ALL
            SELECT least(a.member, b.member), greatest(a.member, b.member), greatest(a.at, b.at),
                   a.s_at, a.s_seq, a.e_at, a.e_seq, b.s_at, b.s_seq, b.e_at, b.e_seq
              FROM stay a
              JOIN stay wa ON wa.bridge_id = a.bridge_id AND wa.is_local
              JOIN stay wb ON wb.member = wa.member AND wb.bridge_id <> wa.bridge_id
              JOIN stay b ON b.bridge_id = wb.bridge_id AND NOT b.is_local
             WHERE NOT a.is_local AND a.member <> b.member
               AND (a.s_at, a.s_seq) < (wa.e_at, wa.e_seq) AND (wa.s_at, wa.s_seq) < (a.e_at, a.e_seq)
               AND (b.s_at, b.s_seq) < (wb.e_at, wb.e_seq) AND (wb.s_at, wb.s_seq) < (b.e_at, b.e_seq)
        )
        SELECT p.leg_a, p.leg_b, min(p.at) AS at FROM pair p
         WHERE (p.s_at, p.s_seq) < (p.b_e_at, p.b_e_seq) AND (p.b_s_at, p.b_s_seq) < (p.e_at, p.e_seq)
         GROUP BY p.leg_a, p.leg_b
         ORDER BY min(p.at), p.leg_a, p.leg_b
    LOOP
        -- The legs' calls now: a merge earlier in this loop may have moved them.
        SELECT call_id INTO v_a FROM cti.call_leg WHERE source = p_source AND leg_uuid = v_pair.leg_a;
        SELECT call_id INTO v_b FROM cti.call_leg WHERE source = p_source AND leg_uuid = v_pair.leg_b;
        CONTINUE WHEN v_a IS NULL OR v_b IS NULL;  -- paired when the leg is created
        IF v_a <> v_b THEN
            PERFORM cti.lock_calls(ARRAY[v_a, v_b]);
            v_a := cti.merge_calls(least(v_a, v_b), greatest(v_a, v_b));
        END IF;
        INSERT INTO cti.call_bridge (call_id, leg_a, leg_b, bridged_at)
        VALUES (v_a, v_pair.leg_a, v_pair.leg_b, v_pair.at)
        ON CONFLICT DO NOTHING;
        v_calls := v_calls || v_a;
    END LOOP;
    RETURN v_calls;
END
$$;

CREATE FUNCTION cti.parse_frames(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) RETURNS TABLE(n bigint, source text, received_at timestamp with time zone, body text, frame jsonb, dedup_key bytea, parse_error text)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH checked AS (
        SELECT i.n, i.source, coalesce(i.received_at, clock_timestamp()) AS received_at, i.body,
               CASE WHEN i.body IS NULL THEN 'empty frame'
                    WHEN octet_length(i.body) > g.max_frame_bytes
                    THEN format('frame is %s bytes, over the %s-byte limit (cti.config.max_frame_bytes)',
                                octet_length(i.body), g.max_frame_bytes)
                    WHEN i.source <> 'asterisk' THEN 'not valid JSON: ' || cti.json_error(i.body)
               END AS error
          FROM unnest(p_sources, p_received, p_bodies) WITH ORDINALITY AS i(source, received_at, body, n)
         CROSS JOIN cti.config g
    ), parsed AS MATERIALIZED (  -- so that each frame is parsed once, however often it is used below
        SELECT c.*, CASE WHEN c.error IS NOT NULL THEN NULL
                         WHEN c.source = 'asterisk' THEN cti.ami_block(c.body)
                         ELSE c.body::jsonb END AS frame
          FROM checked c
    )
    SELECT p.n, p.source, p.received_at,
           CASE WHEN p.frame IS NULL OR p.source = 'asterisk' THEN p.body END,  -- kept only when not parsed, or AMI
           p.frame,
           -- jsonb's text form is canonical (key order, spacing), so a replayed frame gets the same key.
           sha256(convert_to(
               CASE WHEN p.source <> 'asterisk' THEN coalesce(p.frame::text, p.body, '')
                    WHEN p.body ~ '(^|\n)Timestamp: *[0-9]' THEN p.body  -- the PBX's own time tells repeats apart
                    ELSE coalesce(p.body, '') || E'\n' || p.received_at::text END, 'UTF8')),
           coalesce(p.error,
                    CASE WHEN p.source = 'asterisk' AND p.frame ->> 'Event' IS NULL
                              AND p.body !~ '(^|\n)ActionID: *pgcti-dial-'  -- the answer to pgcti's Originate
                         THEN 'not an AMI event block (no Event: line)'
                         WHEN jsonb_typeof(p.frame) <> 'object'
                         THEN 'frame is JSON but not an object: ' || jsonb_typeof(p.frame) END)
      FROM parsed p;
END
$$;

CREATE FUNCTION cti.pbx_time(p_value jsonb, p_default timestamp with time zone) RETURNS timestamp with time zone
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) NOT IN ('number', 'string') THEN
        RETURN p_default;
    END IF;
    IF (p_value #>> '{}') ~ '^\d{9,10}(\.\d+)?$' THEN
        RETURN to_timestamp((p_value #>> '{}')::numeric);
    END IF;
    IF (p_value #>> '{}') ~ '^\d{13}$' THEN  -- milliseconds
        RETURN to_timestamp((p_value #>> '{}')::numeric / 1000);
    END IF;
    RETURN (p_value #>> '{}')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN p_default;
END
$_$;

CREATE FUNCTION cti.period_summary_v1(p_first date, p_last date) RETURNS TABLE(inbound_calls bigint, answered bigint, ended_unanswered bigint, answer_rate numeric, never_called_back bigint, first_time_callers bigint, deals_won bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH days AS (
        SELECT * FROM cti.daily_call_stats_v1 d WHERE d.all_lines AND d.day BETWEEN p_first AND p_last
    ), firsts AS (
        SELECT DISTINCT ON (party) party, started_at, client_match
          FROM (SELECT cti.callback_party(CASE WHEN cti.client_kind(c) = 'client' THEN c.client_id END,
                                          c.external_number) AS party, c.started_at, c.client_match
                  FROM cti.call c
                 WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
                   AND c.external_number IS NOT NULL AND NOT cti.is_extension(c.external_number)) p
         ORDER BY party, started_at
    )
    SELECT coalesce(sum(d.inbound_calls), 0)::bigint, coalesce(sum(d.answered), 0)::bigint,
           coalesce(sum(d.missed + d.abandoned + d.busy + d.rejected), 0)::bigint,
           round(sum(d.answered) / nullif(sum(d.answered + d.missed + d.abandoned + d.busy + d.rejected), 0), 3),
           coalesce(sum(d.missed_never_called_back), 0)::bigint,
           (SELECT count(*) FROM firsts f
             WHERE f.started_at::date BETWEEN p_first AND p_last AND f.client_match IN ('new', 'none')),
           (SELECT count(*) FROM cti.crm_deals() x WHERE x.won_at::date BETWEEN p_first AND p_last)
      FROM days d
$$;

COMMENT ON FUNCTION cti.period_summary_v1(p_first date, p_last date) IS 'A period''s headline: inbound, answered, ended unanswered, answer rate, never called back, first-time callers, deals won, each within the period';

CREATE TABLE cti.phone_directory (
    source_id integer NOT NULL,
    row_id text NOT NULL,
    crm_key text NOT NULL,
    e164 text NOT NULL,
    ext text
);

COMMENT ON TABLE cti.phone_directory IS 'Every E.164 number in the attached CRM columns, with the CRM key of its row; kept by triggers';

CREATE TABLE cti.phone_source (
    id integer NOT NULL,
    table_name regclass NOT NULL,
    phone_column name NOT NULL,
    row_column name NOT NULL,
    key_column name NOT NULL,
    attached_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE cti.phone_source IS 'CRM phone columns attached to the phone directory (cti.attach_phone_column)';

CREATE FUNCTION cti.phone_directory_rows(p_source cti.phone_source, p_row jsonb) RETURNS SETOF cti.phone_directory
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT DISTINCT ON (n.number) p_source.id, p_row ->> p_source.row_column, p_row ->> p_source.key_column, n.number, n.ext
      FROM cti.phone_numbers(p_row ->> p_source.phone_column::text) n
     WHERE left(n.number, 1) = '+' AND p_row ->> p_source.key_column IS NOT NULL
     ORDER BY n.number
$$;

CREATE TABLE cti.config (
    singleton boolean DEFAULT true NOT NULL,
    default_country_code text DEFAULT '7'::text NOT NULL,
    trunk_prefix text DEFAULT '8'::text NOT NULL,
    international_prefixes text[] DEFAULT ARRAY['810'::text, '00'::text] NOT NULL,
    national_digits integer DEFAULT 10 NOT NULL,
    extension_max_digits integer DEFAULT 5 NOT NULL,
    max_frame_bytes integer DEFAULT 1048576 NOT NULL,
    stale_call_after interval DEFAULT '02:00:00'::interval NOT NULL,
    doorbell_max_queue_usage real DEFAULT 0.5 NOT NULL,
    callback_due_after interval DEFAULT '01:00:00'::interval NOT NULL,
    callback_owner_policy text[] DEFAULT ARRAY['manager'::text, 'line'::text, 'default'::text] NOT NULL,
    callback_default_owner bigint,
    ami_trunk_channels text[] DEFAULT '{}'::text[] NOT NULL,
    ami_trunk_contexts text[] DEFAULT ARRAY['from-trunk'::text, 'from-pstn'::text] NOT NULL,
    outbox_keep interval DEFAULT '30 days'::interval,
    lookup_withheld_numbers boolean DEFAULT false NOT NULL,
    dial_expire_after interval DEFAULT '00:00:30'::interval NOT NULL,
    dial_unknown_after interval DEFAULT '00:02:00'::interval NOT NULL,
    dial_requests_per_minute integer DEFAULT 6 NOT NULL,
    recordings_keep interval DEFAULT '365 days'::interval NOT NULL,
    CONSTRAINT ami_trunk_channels_are_regular_expressions CHECK (cti.are_regular_expressions(ami_trunk_channels)),
    CONSTRAINT config_callback_due_after_check CHECK ((callback_due_after >= '00:00:00'::interval)),
    CONSTRAINT config_callback_owner_policy_check CHECK ((callback_owner_policy <@ ARRAY['manager'::text, 'line'::text, 'default'::text])),
    CONSTRAINT config_default_country_code_check CHECK ((default_country_code ~ '^[1-9][0-9]{0,2}$'::text)),
    CONSTRAINT config_dial_expire_after_check CHECK ((dial_expire_after > '00:00:00'::interval)),
    CONSTRAINT config_dial_requests_per_minute_check CHECK ((dial_requests_per_minute > 0)),
    CONSTRAINT config_dial_unknown_after_check CHECK ((dial_unknown_after > '00:00:00'::interval)),
    CONSTRAINT config_doorbell_max_queue_usage_check CHECK (((doorbell_max_queue_usage > (0)::double precision) AND (doorbell_max_queue_usage < (1)::double precision))),
    CONSTRAINT config_extension_max_digits_check CHECK (((extension_max_digits >= 1) AND (extension_max_digits <= 8))),
    CONSTRAINT config_max_frame_bytes_check CHECK ((max_frame_bytes > 0)),
    CONSTRAINT config_national_digits_check CHECK (((national_digits >= 4) AND (national_digits <= 14))),
    CONSTRAINT config_outbox_keep_check CHECK ((outbox_keep > '00:00:00'::interval)),
    CONSTRAINT config_recordings_keep_check CHECK ((recordings_keep > '00:00:00'::interval)),
    CONSTRAINT config_singleton_check CHECK (singleton),
    CONSTRAINT config_stale_call_after_check CHECK ((stale_call_after > '00:00:00'::interval)),
    CONSTRAINT config_trunk_prefix_check CHECK ((trunk_prefix ~ '^[0-9]*$'::text))
);

COMMENT ON TABLE cti.config IS 'pgcti settings (one row): phone rules and the raw frame size limit; edit with UPDATE';

COMMENT ON COLUMN cti.config.outbox_keep IS 'Acknowledged outbox items older than this are removed by the ingester''s tick (NULL: kept for ever); unacknowledged ones always stay';

COMMENT ON COLUMN cti.config.lookup_withheld_numbers IS 'Look a withheld number up in the CRM all the same (its client is shown, the number never is)';

COMMENT ON COLUMN cti.config.dial_expire_after IS 'A dial request no edge took within this is expired: nobody is called minutes later';

COMMENT ON COLUMN cti.config.dial_unknown_after IS 'A request sent with no outcome from the PBX within this is marked unknown (never dialled again)';

COMMENT ON COLUMN cti.config.dial_requests_per_minute IS 'Dial requests one desk may make per minute';

COMMENT ON COLUMN cti.config.recordings_keep IS 'References to recordings older than this are deleted (the PBX deletes its files by its own rule); plays are refused past it';

CREATE FUNCTION cti.phone_from_digits(p_digits text, p_cfg cti.config) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_digits text := replace(p_digits, '+', '');
    v_prefix text;
BEGIN
    IF v_digits = '' THEN
        RETURN NULL;
    END IF;
    IF left(p_digits, 1) = '+' THEN
        RETURN CASE WHEN length(v_digits) BETWEEN 8 AND 15 THEN '+' || v_digits END;
    END IF;
    IF length(v_digits) <= p_cfg.extension_max_digits THEN
        RETURN v_digits;
    END IF;
    FOREACH v_prefix IN ARRAY p_cfg.international_prefixes LOOP
        IF v_prefix <> '' AND left(v_digits, length(v_prefix)) = v_prefix
           AND length(v_digits) - length(v_prefix) BETWEEN 8 AND 15 THEN
            RETURN '+' || substr(v_digits, length(v_prefix) + 1);
        END IF;
    END LOOP;
    IF length(v_digits) = p_cfg.national_digits + length(p_cfg.trunk_prefix)
       AND p_cfg.trunk_prefix <> '' AND left(v_digits, length(p_cfg.trunk_prefix)) = p_cfg.trunk_prefix THEN
        RETURN '+' || p_cfg.default_country_code || substr(v_digits, length(p_cfg.trunk_prefix) + 1);
    END IF;
    IF length(v_digits) = p_cfg.national_digits THEN
        RETURN '+' || p_cfg.default_country_code || v_digits;
    END IF;
    IF length(v_digits) BETWEEN 8 AND 15 THEN
        RETURN '+' || v_digits;  -- already international, written without '+'
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION cti.phone_from_digits(p_digits text, p_cfg cti.config) IS 'The digits of one number -> E.164 or an internal extension, by the rules given';

CREATE FUNCTION cti.phone_numbers(p_raw text) RETURNS TABLE(number text, ext text)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_cfg cti.config;
    v_text text;
    v_parts text[];
    v_part text;
    v_token text;
    v_match text[];
    v_digits text;
BEGIN
    IF p_raw IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO v_cfg FROM cti.config;
    IF p_raw ~ '^\+?[0-9]{1,15}$' THEN  -- digits only, as PBXs send them: nothing to parse
        number := cti.phone_from_digits(p_raw, v_cfg);
        IF number IS NOT NULL THEN
            RETURN NEXT;
        END IF;
        RETURN;
    END IF;
    -- Full-width digits and plus, as pasted from some documents and keyboards.
    v_text := translate(p_raw, '０１２３４５６７８９＋', '0123456789+');
    -- '"Name" <sip:101@host>' -> 'sip:101@host'; then the scheme and the host go.
    v_text := regexp_replace(v_text, '^[^<]*<([^>]*)>.*$', '\1');
    v_text := regexp_replace(v_text, '^\s*(sips?|tel):', '', 'i');
    v_text := regexp_replace(v_text, '@[^,;]*', '', 'g');
    -- URI parameters: ';ext=12' is an extension, the others (phone-context, isub) go.
    v_text := regexp_replace(v_text, ';\s*ext\s*=\s*', ' ext ', 'gi');
    v_text := regexp_replace(v_text, ';\s*[a-z-]+=[^;,]*', '', 'gi');
    -- '..., доб. 12': a separator before an extension suffix does not start a new number.
    v_text := regexp_replace(v_text, '[,;]\s*(?=[дД][оО][бБ]|[вВ][нН]|ext|x\s*\d|#)', ' ', 'gi');
    -- Several numbers: split at ',', ';', '|', a line break, ' / ' or a word such as 'или'.
    -- ('8/495/123-45-67' is one number: a slash without spaces groups digits.)
    v_parts := regexp_split_to_array(v_text, '[,;|\n]+|\s+/\s+|\s+(или|ИЛИ|or|and|и)\s+', 'i');
    FOREACH v_part IN ARRAY v_parts LOOP
        ext := NULL;
        v_match := regexp_match(v_part,
            '^(.*?)[\s(,]*(?:[дД][оО][бБ](?:[аА][вВ][оО][чЧ][нН][ыЫ][йЙ])?|[вВ][нН](?:[уУ][тТ][рР])?|ext(?:ension|n)?|x|#)[.:\s№]*(\d{1,7})\s*\)?\s*$',
            'i');
        IF v_match IS NOT NULL THEN
            v_part := v_match[1];
            ext := v_match[2];
        END IF;
        -- '+44 (0)20 7946 0958': the national prefix shown in brackets is not dialled.
        v_part := regexp_replace(v_part, '^(\s*\+\s*\d{1,3}[\s.-]*)\(0\)', '\1');
        v_digits := regexp_replace(v_part, '[^0-9+]', '', 'g');
        IF length(replace(v_digits, '+', '')) <= 15 THEN
            number := cti.phone_from_digits(regexp_replace(v_digits, '(.)\+', '\1', 'g'), v_cfg);
            -- Among several numbers a few digits are a stray fragment, not an extension.
            IF number IS NOT NULL AND (left(number, 1) = '+' OR cardinality(v_parts) = 1) THEN
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        -- Too many digits for one number: numbers separated by spaces only.
        FOREACH v_token IN ARRAY regexp_split_to_array(trim(v_part), '\s+') LOOP
            v_digits := regexp_replace(v_token, '[^0-9+]', '', 'g');
            IF length(replace(v_digits, '+', '')) >= v_cfg.national_digits THEN
                number := cti.phone_from_digits(v_digits, v_cfg);
                IF number IS NOT NULL THEN
                    RETURN NEXT;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END
$_$;

COMMENT ON FUNCTION cti.phone_numbers(p_raw text) IS 'Every number in a field: E.164 (or an internal extension) and its extension suffix apart; rules in cti.config';

CREATE FUNCTION cti.phone_numbers_v1(p_raw text) RETURNS TABLE(number text, ext text)
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 SELECT n.number,
     n.ext
    FROM cti.phone_numbers(phone_numbers_v1.p_raw) n(number, ext);
END;

COMMENT ON FUNCTION cti.phone_numbers_v1(p_raw text) IS 'Every number in a field: E.164 (or an internal extension) and its extension suffix (client API)';

CREATE FUNCTION cti.phone_source_drop_trigger_sql(p_source cti.phone_source) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT array_agg(format('DROP TRIGGER IF EXISTS %I ON %s', t.name, p_source.table_name) ORDER BY t.name)
      FROM unnest(ARRAY[cti.phone_trigger_name(p_source.phone_column, 'write'),
                        cti.phone_trigger_name(p_source.phone_column, 'update'),
                        cti.phone_trigger_name(p_source.phone_column, 'truncate'),
                        'pgcti_phone_' || p_source.id, 'pgcti_phone_' || p_source.id || '_truncate']::name[]) t(name)
     WHERE EXISTS (SELECT FROM pg_trigger g WHERE g.tgrelid = p_source.table_name AND g.tgname = t.name)
$$;

CREATE FUNCTION cti.phone_source_trigger_sql(p_source cti.phone_source) RETURNS text[]
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
    SELECT ARRAY[
        format('CREATE TRIGGER %I AFTER INSERT OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'write'), p_source.table_name, p_source.phone_column),
        format('CREATE TRIGGER %I AFTER UPDATE OF %s ON %s FOR EACH ROW WHEN (%s) EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'update'),
               (SELECT string_agg(DISTINCT quote_ident(c), ', ') FROM unnest(ARRAY[p_source.phone_column, p_source.row_column, p_source.key_column]::text[]) c),
               p_source.table_name,
               (SELECT string_agg(DISTINCT format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ') FROM unnest(ARRAY[p_source.phone_column, p_source.row_column, p_source.key_column]::text[]) c),
               p_source.phone_column),
        format('CREATE TRIGGER %I AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_phone_source__sync(%L)',
               cti.phone_trigger_name(p_source.phone_column, 'truncate'), p_source.table_name, p_source.phone_column)
    ]
$_$;

CREATE FUNCTION cti.phone_trigger_name(p_phone_column name, p_event text) RETURNS name
    LANGUAGE sql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT CASE WHEN octet_length(p_phone_column::text) <= 40 THEN 'pgcti_phone_' || p_phone_column::text || '_' || p_event
                ELSE 'pgcti_phone_' || left(p_phone_column::text, 24) || '_' || left(md5(p_phone_column::text), 8) || '_' || p_event
           END::name
$$;

CREATE FUNCTION cti.presence_from_ami(p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
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
$_$;

CREATE FUNCTION cti.presence_from_onlinepbx(p_frame jsonb, p_at timestamp with time zone, OUT status text, OUT detail text) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.presence_now() RETURNS TABLE(extension text, state text, since timestamp with time zone, paused_reason text, until timestamp with time zone)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT p.extension, cti.presence_state(p), cti.presence_since(p),
           CASE WHEN p.paused THEN p.paused_reason END,
           CASE WHEN cti.presence_state(p) IN ('away', 'dnd') THEN p.desk_until END
      FROM cti.presence p ORDER BY p.extension
$$;

CREATE TABLE cti.presence (
    extension text NOT NULL,
    device_state text,
    device_since timestamp with time zone,
    paused boolean DEFAULT false NOT NULL,
    paused_reason text,
    paused_since timestamp with time zone,
    desk_state text,
    desk_until timestamp with time zone,
    desk_since timestamp with time zone,
    changed_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT presence_desk_state_check CHECK ((desk_state = ANY (ARRAY['away'::text, 'dnd'::text])))
);

COMMENT ON TABLE cti.presence IS 'Each extension''s state: the PBX''s device state, a queue pause, and away / do not disturb set at the desk; changed only on real change';

CREATE FUNCTION cti.presence_since(p cti.presence) RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    RETURN CASE WHEN (((p).desk_state IS NOT NULL) AND (((p).desk_until IS NULL) OR ((p).desk_until > now()))) THEN (p).desk_since WHEN (p).paused THEN (p).paused_since ELSE (p).device_since END;

CREATE FUNCTION cti.presence_state(p cti.presence) RETURNS text
    LANGUAGE sql STABLE
    RETURN CASE WHEN (((p).desk_state IS NOT NULL) AND (((p).desk_until IS NULL) OR ((p).desk_until > now()))) THEN (p).desk_state WHEN (p).paused THEN 'paused'::text WHEN ((p).device_state = ANY (ARRAY['INUSE'::text, 'BUSY'::text, 'ONHOLD'::text, 'RINGINUSE'::text])) THEN 'busy'::text WHEN ((p).device_state = 'RINGING'::text) THEN 'ringing'::text WHEN ((p).device_state = ANY (ARRAY['UNAVAILABLE'::text, 'INVALID'::text])) THEN 'offline'::text WHEN ((p).device_state = 'NOT_INUSE'::text) THEN 'available'::text ELSE 'unknown'::text END;

CREATE FUNCTION cti.presence_v1() RETURNS TABLE(extension text, state text, since timestamp with time zone, paused_reason text, until timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.presence_now() $$;

COMMENT ON FUNCTION cti.presence_v1() IS 'Client API v1: each extension''s presence (available, busy, ringing, offline, paused, away, dnd, unknown) and since when';

CREATE TABLE cti.raw_event (
    id bigint NOT NULL,
    source text NOT NULL,
    received_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    body text,
    frame jsonb,
    dedup_key bytea NOT NULL,
    parse_error text,
    CONSTRAINT raw_event_source_check CHECK ((source ~ '^[a-z0-9_]{1,32}$'::text))
);

COMMENT ON TABLE cti.raw_event IS 'Every PBX frame as received (append-only); derived state is a function of this log';

CREATE FUNCTION cti.process_and_record(p_event cti.raw_event, p_live boolean) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.process_event(p_event cti.raw_event, p_live boolean, OUT status text, OUT detail text) RETURNS record
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.process_frame_by_frame(p_events cti.raw_event[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.process_in_rounds(p_events cti.raw_event[]) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
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

CREATE FUNCTION cti.process_lone_frame(p_event cti.raw_event) RETURNS boolean
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
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

COMMENT ON FUNCTION cti.process_lone_frame(p_event cti.raw_event) IS 'Process an INSERT''s only frame as a round of one would, in fewer statements; false (nothing changed) when it needs the frame-by-frame path';

CREATE FUNCTION cti.process_round(p_facts cti.frame_fact[]) RETURNS cti.derivation_result
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
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

CREATE FUNCTION cti.prune_outbox(p_now timestamp with time zone, p_per_stream integer DEFAULT 100) RETURNS bigint
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET enable_seqscan TO 'off'
    AS $$
    WITH cutoff AS (
        SELECT p_now - c.outbox_keep AS at FROM cti.config c WHERE c.outbox_keep IS NOT NULL
    ),
    due AS (  -- the acknowledged streams whose first item is old enough
        SELECT a.target_kind, a.target_id, a.acked_seq, k.at
          FROM cti.stream_ack a CROSS JOIN cutoff k
         WHERE (SELECT o.created_at FROM cti.outbox o
                 WHERE o.target_kind = a.target_kind AND o.target_id = a.target_id
                 ORDER BY o.seq LIMIT 1) < k.at
    ),
    gone AS (  -- each row found through the key, deleted by its ctid (no scan of the table)
        DELETE FROM cti.outbox o
         USING due d
         CROSS JOIN LATERAL (SELECT f.ctid AS row_at FROM cti.outbox f
                              WHERE f.target_kind = d.target_kind AND f.target_id = d.target_id
                                AND f.seq <= d.acked_seq
                              ORDER BY f.seq LIMIT p_per_stream) x
         WHERE o.ctid = x.row_at AND o.created_at < d.at
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

COMMENT ON FUNCTION cti.prune_outbox(p_now timestamp with time zone, p_per_stream integer) IS 'Remove acknowledged outbox items older than cti.config.outbox_keep (at most p_per_stream per stream); unacknowledged items stay';

CREATE FUNCTION cti.prune_recordings(p_at timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_count int;
BEGIN
    DELETE FROM cti.recording r WHERE r.started_at < p_at - (SELECT g.recordings_keep FROM cti.config g);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$$;

CREATE FUNCTION cti.pull(p_kind text, p_id bigint, p_after bigint, p_limit integer) RETURNS TABLE(seq bigint, type text, call_id bigint, payload jsonb, created_at timestamp with time zone)
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT o.seq, o.type, o.call_id, o.payload, o.created_at
      FROM cti.outbox o
     WHERE o.target_kind = p_kind AND o.target_id = p_id
       AND o.seq > coalesce(p_after, (SELECT a.acked_seq FROM cti.stream_ack a
                                       WHERE a.target_kind = p_kind AND a.target_id = p_id), 0)
     ORDER BY o.seq
     LIMIT least(greatest(coalesce(p_limit, 100), 1), 1000);
END
$$;

CREATE FUNCTION cti.pull_commands_v1(p_after bigint DEFAULT NULL::bigint, p_limit integer DEFAULT 100) RETURNS TABLE(seq bigint, type text, call_id bigint, payload jsonb, created_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.pull('ws', (cti.my_binding()).workstation_id, p_after, p_limit) $$;

COMMENT ON FUNCTION cti.pull_commands_v1(p_after bigint, p_limit integer) IS 'Client API v1: card commands for my workstation with seq > p_after (default: my ack), oldest first';

CREATE FUNCTION cti.pull_notifications_v1(p_after bigint DEFAULT NULL::bigint, p_limit integer DEFAULT 100) RETURNS TABLE(seq bigint, type text, call_id bigint, payload jsonb, created_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.pull('emp', (cti.my_binding()).employee_id, p_after, p_limit) $$;

COMMENT ON FUNCTION cti.pull_notifications_v1(p_after bigint, p_limit integer) IS 'Client API v1: ring notifications for me with seq > p_after (default: my ack), oldest first';

CREATE FUNCTION cti.q850_cause(p_code text) RETURNS text
    LANGUAGE sql IMMUTABLE
    RETURN CASE p_code WHEN '0'::text THEN 'UNSPECIFIED'::text WHEN '1'::text THEN 'UNALLOCATED_NUMBER'::text WHEN '3'::text THEN 'NO_ROUTE_DESTINATION'::text WHEN '16'::text THEN 'NORMAL_CLEARING'::text WHEN '17'::text THEN 'USER_BUSY'::text WHEN '18'::text THEN 'NO_USER_RESPONSE'::text WHEN '19'::text THEN 'NO_ANSWER'::text WHEN '20'::text THEN 'SUBSCRIBER_ABSENT'::text WHEN '21'::text THEN 'CALL_REJECTED'::text WHEN '26'::text THEN 'NON_SELECTED_USER_CLEARING'::text WHEN '27'::text THEN 'DESTINATION_OUT_OF_ORDER'::text WHEN '28'::text THEN 'INVALID_NUMBER_FORMAT'::text WHEN '31'::text THEN 'NORMAL_UNSPECIFIED'::text WHEN '34'::text THEN 'NORMAL_CIRCUIT_CONGESTION'::text WHEN '38'::text THEN 'NETWORK_OUT_OF_ORDER'::text WHEN '41'::text THEN 'NORMAL_TEMPORARY_FAILURE'::text WHEN '42'::text THEN 'SWITCH_CONGESTION'::text WHEN '127'::text THEN 'INTERWORKING'::text ELSE CASE WHEN (p_code ~ '^[0-9]{1,3}$'::text) THEN ('Q850_'::text || p_code) ELSE NULL::text END END;

CREATE FUNCTION cti.queue_fact_from_ami(p_source text, p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_event text := p_frame ->> 'Event';
    v jsonb;
    v_at timestamptz;
    v_caller text;
    v_queue text;
BEGIN
    IF v_event IS NULL OR v_event NOT IN ('QueueCallerJoin', 'QueueCallerLeave', 'QueueCallerAbandon', 'AgentCalled',
                                           'AgentConnect', 'AgentComplete', 'AgentRingNoAnswer', 'VarSet') THEN
        RETURN NULL;
    END IF;
    v := cti.ami_fields(p_frame);
    IF v_event = 'VarSet' AND v ->> 'Variable' IS DISTINCT FROM 'QUEUESTATUS' THEN
        RETURN NULL;
    END IF;
    v_at := cti.pbx_time(v -> 'Timestamp', p_at);
    v_caller := cti.required_field(v, 'Uniqueid', v_event, 'AMI');
    IF v_event = 'VarSet' THEN  -- how the caller left its last queue, unless answered or abandoned
        UPDATE cti.queue_call q SET exit_status = left(v ->> 'Value', 20)
         WHERE (q.source, q.caller_leg, q.queue) = (
               SELECT l.source, l.caller_leg, l.queue FROM cti.queue_call l
                WHERE l.source = p_source AND l.caller_leg = v_caller
                ORDER BY l.joined_at DESC NULLS LAST LIMIT 1);
        RETURN 'queue: ' || left(v ->> 'Value', 20);
    END IF;
    v_queue := cti.required_field(v, 'Queue', v_event, 'AMI');
    IF v_event IN ('AgentCalled', 'AgentRingNoAnswer', 'AgentConnect') THEN
        INSERT INTO cti.queue_attempt AS a (source, agent_leg, caller_leg, queue, agent, agent_interface, called_at)
        VALUES (p_source, cti.required_field(v, 'DestUniqueid', v_event, 'AMI'), v_caller, v_queue,
                cti.ami_member_extension(v ->> 'Interface'), v ->> 'Interface',
                CASE WHEN v_event = 'AgentCalled' THEN v_at END)
        ON CONFLICT (source, agent_leg) DO UPDATE
           SET called_at = coalesce(a.called_at, EXCLUDED.called_at),
               result = CASE WHEN v_event = 'AgentConnect' THEN 'answered'
                             WHEN v_event = 'AgentRingNoAnswer' THEN coalesce(a.result, 'no_answer')
                             ELSE a.result END,
               ring_seconds = CASE WHEN v_event = 'AgentRingNoAnswer' THEN (v ->> 'RingTime')::numeric / 1000
                                   WHEN v_event = 'AgentConnect' THEN extract(epoch FROM v_at - a.called_at)
                                   ELSE a.ring_seconds END;
    END IF;
    IF v_event IN ('AgentCalled', 'AgentRingNoAnswer') THEN
        RETURN format('queue %s: %s %s', left(v_queue, 40), v_event, left(v ->> 'Interface', 40));
    END IF;
    INSERT INTO cti.queue_call AS q (source, caller_leg, queue, call_key) VALUES (p_source, v_caller, v_queue, v ->> 'Linkedid')
    ON CONFLICT (source, caller_leg, queue) DO NOTHING;
    UPDATE cti.queue_call q SET
           joined_at = CASE WHEN v_event = 'QueueCallerJoin' THEN coalesce(q.joined_at, v_at) ELSE q.joined_at END,
           join_position = CASE WHEN v_event = 'QueueCallerJoin' THEN coalesce(q.join_position, (v ->> 'Position')::int)
                                ELSE q.join_position END,
           connected_at = CASE WHEN v_event = 'AgentConnect' THEN coalesce(q.connected_at, v_at) ELSE q.connected_at END,
           agent = CASE WHEN v_event = 'AgentConnect' THEN coalesce(q.agent, cti.ami_member_extension(v ->> 'Interface'))
                        ELSE q.agent END,
           agent_interface = CASE WHEN v_event = 'AgentConnect' THEN coalesce(q.agent_interface, v ->> 'Interface')
                                  ELSE q.agent_interface END,
           completed_at = CASE WHEN v_event = 'AgentComplete' THEN v_at ELSE q.completed_at END,
           talk_seconds = CASE WHEN v_event = 'AgentComplete' THEN (v ->> 'TalkTime')::int ELSE q.talk_seconds END,
           ended_by = CASE WHEN v_event = 'AgentComplete' THEN left(v ->> 'Reason', 20) ELSE q.ended_by END,
           abandoned_at = CASE WHEN v_event = 'QueueCallerAbandon' THEN v_at ELSE q.abandoned_at END,
           abandon_position = CASE WHEN v_event = 'QueueCallerAbandon' THEN (v ->> 'Position')::int ELSE q.abandon_position END,
           abandon_wait_seconds = CASE WHEN v_event = 'QueueCallerAbandon' THEN (v ->> 'HoldTime')::int
                                       ELSE q.abandon_wait_seconds END,
           left_at = CASE WHEN v_event = 'QueueCallerLeave' THEN coalesce(q.left_at, v_at) ELSE q.left_at END,
           call_key = coalesce(q.call_key, v ->> 'Linkedid')
     WHERE q.source = p_source AND q.caller_leg = v_caller AND q.queue = v_queue;
    RETURN format('queue %s: %s', left(v_queue, 40), v_event);
END
$$;

CREATE TABLE cti.queue_call (
    source text NOT NULL,
    caller_leg text NOT NULL,
    queue text NOT NULL,
    call_key text,
    joined_at timestamp with time zone,
    join_position integer,
    connected_at timestamp with time zone,
    agent text,
    agent_interface text,
    completed_at timestamp with time zone,
    talk_seconds integer,
    ended_by text,
    abandoned_at timestamp with time zone,
    abandon_position integer,
    abandon_wait_seconds integer,
    left_at timestamp with time zone,
    exit_status text
);

COMMENT ON TABLE cti.queue_call IS 'A caller''s stay in a queue: joined (position), answered by whom and when, talk time, who ended it, abandoned (position, wait), left how';

CREATE TABLE cti.queue_setting (
    queue text NOT NULL,
    service_level_seconds integer DEFAULT 20 NOT NULL,
    short_abandon_seconds integer DEFAULT 5 NOT NULL,
    CONSTRAINT queue_setting_service_level_seconds_check CHECK ((service_level_seconds > 0)),
    CONSTRAINT queue_setting_short_abandon_seconds_check CHECK ((short_abandon_seconds >= 0))
);

COMMENT ON TABLE cti.queue_setting IS 'Per queue: the service level target (answered within T seconds) and abandons short enough to leave out (under N seconds); queues without a row take 20 and 5';

CREATE FUNCTION cti.queue_stats_between(p_from timestamp with time zone, p_until timestamp with time zone) RETURNS TABLE(queue text, day date, hour integer, offered bigint, answered bigint, abandoned bigint, abandoned_short bigint, timed_out bigint, other_exits bigint, answered_within_target bigint, service_level numeric, avg_wait_seconds numeric, longest_wait_seconds numeric, avg_handle_seconds numeric, exited_by_key bigint)
    LANGUAGE sql STABLE PARALLEL SAFE
    BEGIN ATOMIC
 WITH stays AS (
          SELECT q.queue,
             (q.joined_at)::date AS day,
             (EXTRACT(hour FROM q.joined_at))::integer AS hour,
             (q.connected_at IS NOT NULL) AS answered,
             ((q.abandoned_at IS NOT NULL) AND (q.connected_at IS NULL)) AS abandoned,
             ((q.abandoned_at IS NOT NULL) AND (q.connected_at IS NULL) AND (COALESCE((q.abandon_wait_seconds)::numeric, EXTRACT(epoch FROM (q.abandoned_at - q.joined_at))) < (COALESCE(s.short_abandon_seconds, 5))::numeric)) AS short_abandon,
             ((q.connected_at IS NULL) AND (q.abandoned_at IS NULL) AND (q.exit_status = 'TIMEOUT'::text)) AS timed_out,
             ((q.connected_at IS NULL) AND (q.abandoned_at IS NULL) AND (q.left_at IS NOT NULL) AND (q.exit_status IS DISTINCT FROM 'TIMEOUT'::text)) AS other_exit,
             ((q.connected_at IS NULL) AND (q.abandoned_at IS NULL) AND (q.left_at IS NOT NULL) AND (q.exit_status IS NULL)) AS key_exit,
                 CASE
                     WHEN (q.connected_at IS NOT NULL) THEN EXTRACT(epoch FROM (q.connected_at - q.joined_at))
                     WHEN (q.abandoned_at IS NOT NULL) THEN COALESCE((q.abandon_wait_seconds)::numeric, EXTRACT(epoch FROM (q.abandoned_at - q.joined_at)))
                     WHEN (q.left_at IS NOT NULL) THEN EXTRACT(epoch FROM (q.left_at - q.joined_at))
                     ELSE NULL::numeric
                 END AS wait_seconds,
             ((q.connected_at IS NULL) AND (q.abandoned_at IS NULL) AND (q.left_at IS NULL)) AS still_waiting,
             q.talk_seconds,
             COALESCE(s.service_level_seconds, 20) AS target
            FROM (cti.queue_call q
              LEFT JOIN cti.queue_setting s ON ((s.queue = q.queue)))
           WHERE ((q.joined_at >= queue_stats_between.p_from) AND (q.joined_at < queue_stats_between.p_until))
         )
  SELECT stays.queue,
     stays.day,
     stays.hour,
     count(*) AS offered,
     count(*) FILTER (WHERE stays.answered) AS answered,
     count(*) FILTER (WHERE stays.abandoned) AS abandoned,
     count(*) FILTER (WHERE stays.short_abandon) AS abandoned_short,
     count(*) FILTER (WHERE stays.timed_out) AS timed_out,
     count(*) FILTER (WHERE stays.other_exit) AS other_exits,
     count(*) FILTER (WHERE (stays.answered AND (stays.wait_seconds <= (stays.target)::numeric))) AS answered_within_target,
     round(((count(*) FILTER (WHERE (stays.answered AND (stays.wait_seconds <= (stays.target)::numeric))))::numeric / (NULLIF((count(*) - count(*) FILTER (WHERE (stays.short_abandon OR stays.still_waiting))), 0))::numeric), 3) AS service_level,
     round(avg(stays.wait_seconds), 1) AS avg_wait_seconds,
     max(stays.wait_seconds) AS longest_wait_seconds,
     round(avg(stays.talk_seconds) FILTER (WHERE stays.answered), 1) AS avg_handle_seconds,
     count(*) FILTER (WHERE stays.key_exit) AS exited_by_key
    FROM stays
   GROUP BY GROUPING SETS ((stays.queue, stays.day), (stays.queue, stays.day, stays.hour));
END;

CREATE FUNCTION cti.rebuild() RETURNS TABLE(events bigint, processed bigint, ignored bigint, failed bigint)
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET enable_seqscan TO 'off'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
DECLARE
    v_event cti.raw_event;
BEGIN
    LOCK TABLE cti.raw_event IN SHARE MODE;
    DELETE FROM cti.callback_task;  -- made again from the calls, in the same order
    DELETE FROM cti.callback_party_key;
    DELETE FROM cti.call_leg;
    DELETE FROM cti.call_bridge;
    DELETE FROM cti.call_transfer;
    DELETE FROM cti.ami_bridge_member;
    DELETE FROM cti.call_alias;  -- merges happen again, in the same order
    DELETE FROM cti.queue_attempt;  -- queue facts and recordings come from the raw log too
    DELETE FROM cti.queue_call;
    DELETE FROM cti.recording;
    UPDATE cti.call SET direction = NULL, external_number = NULL, external_number_raw = NULL, dialled = NULL,
        client_id = NULL, client_match = NULL, client_candidates = NULL, client_card = NULL,
        started_at = NULL, last_event_at = NULL, answered_at = NULL, answered_by = NULL, holder_extension = NULL, ended_at = NULL,
        outcome = NULL, hangup_cause = NULL, hold_count = 0, pbx_ended = false, ring_notified = false,
        card_workstation_id = NULL, routing_note = NULL;
    FOR v_event IN SELECT * FROM cti.raw_event ORDER BY id LOOP
        PERFORM cti.process_and_record(v_event, false);
    END LOOP;
    DELETE FROM cti.call c WHERE NOT EXISTS (SELECT FROM cti.call_leg l WHERE l.call_id = c.id)
                             AND NOT c.pbx_ended;
    RETURN QUERY SELECT count(*), count(*) FILTER (WHERE o.status = 'processed'),
                        count(*) FILTER (WHERE o.status = 'ignored'), count(*) FILTER (WHERE o.status = 'failed')
                   FROM cti.event_outcome o;
END
$$;

COMMENT ON FUNCTION cti.rebuild() IS 'Re-derive calls and outcomes from cti.raw_event (after a phone rule change, say) without sending any command';

CREATE FUNCTION cti.record_bridge_stay(p_source text, p_fact cti.fact, p_seq bigint) RETURNS bigint[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF p_fact.kind = 'bridge_enter' THEN
        INSERT INTO cti.ami_bridge_member AS m (source, bridge_id, member, is_local, entered_at, entered_seq)
        VALUES (p_source, p_fact.other_leg, p_fact.leg, cti.ami_is_local(p_fact.destination_raw), p_fact.at, p_seq)
        ON CONFLICT (source, bridge_id, member) DO UPDATE
           SET entered_at = EXCLUDED.entered_at, entered_seq = EXCLUDED.entered_seq
         WHERE m.entered_seq IS NULL OR (EXCLUDED.entered_at, EXCLUDED.entered_seq) < (m.entered_at, m.entered_seq);
    ELSE
        INSERT INTO cti.ami_bridge_member AS m (source, bridge_id, member, is_local, left_at, left_seq)
        VALUES (p_source, p_fact.other_leg, p_fact.leg, cti.ami_is_local(p_fact.destination_raw), p_fact.at, p_seq)
        ON CONFLICT (source, bridge_id, member) DO UPDATE
           SET left_at = EXCLUDED.left_at, left_seq = EXCLUDED.left_seq
         WHERE m.left_seq IS NULL OR (EXCLUDED.left_at, EXCLUDED.left_seq) < (m.left_at, m.left_seq);
    END IF;
    RETURN cti.pair_bridge_legs(p_source, ARRAY[p_fact.other_leg]);
END
$$;

CREATE FUNCTION cti.recording_from_ami(p_source text, p_frame jsonb, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.refresh_phone_directory(p_source_id integer DEFAULT NULL::integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_source cti.phone_source;
    v_rows bigint;
    v_total bigint := 0;
BEGIN
    FOR v_source IN SELECT * FROM cti.phone_source WHERE p_source_id IS NULL OR id = p_source_id ORDER BY id LOOP
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id;
        EXECUTE format('INSERT INTO cti.phone_directory SELECT d.* FROM %s t, '
                       'cti.phone_directory_rows($1, to_jsonb(t)) d ON CONFLICT DO NOTHING', v_source.table_name)
        USING v_source;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_total := v_total + v_rows;
    END LOOP;
    RETURN v_total;
END
$_$;

COMMENT ON FUNCTION cti.refresh_phone_directory(p_source_id integer) IS 'Recompute the phone directory from the attached CRM columns; returns the numbers kept';

CREATE FUNCTION cti.required_field(p_data jsonb, p_field text, p_event text, p_path text DEFAULT 'data'::text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_value text := p_data ->> p_field;
BEGIN
    IF v_value IS NULL OR v_value = '' THEN
        RAISE EXCEPTION '% frame lacks field "%.%"', p_event, p_path, p_field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_value;
END
$$;

CREATE FUNCTION cti.required_object(p_data jsonb, p_event text, p_path text) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    IF p_data IS NULL OR jsonb_typeof(p_data) <> 'object' THEN
        RAISE EXCEPTION '% frame lacks field "%"', p_event, p_path USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN p_data;
END
$$;

CREATE FUNCTION cti.revoke_gateway_token_v1(p_token_id bigint) RETURNS boolean
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE id = p_token_id AND revoked_at IS NULL RETURNING 1)
    SELECT EXISTS (SELECT FROM r)
$$;

COMMENT ON FUNCTION cti.revoke_gateway_token_v1(p_token_id bigint) IS 'Revoke one browser token by its id (gateway_tokens_v1), desk or wallboard';

CREATE FUNCTION cti.revoke_gateway_tokens_v1(p_login name) RETURNS integer
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    WITH r AS (UPDATE cti.gateway_token SET revoked_at = now()
                WHERE (login = p_login OR p_login IS NULL AND scope = 'wallboard')  -- not router tokens
                  AND revoked_at IS NULL RETURNING 1)
    SELECT count(*)::int FROM r
$$;

COMMENT ON FUNCTION cti.revoke_gateway_tokens_v1(p_login name) IS 'Revoke every live browser token of a desk login (NULL: every wallboard token); returns how many';

CREATE FUNCTION cti.rotate_channel_key() RETURNS timestamp with time zone
    LANGUAGE sql
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    UPDATE cti.channel_key
       SET key = decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'),
           rotated_at = now()
    RETURNING rotated_at
$$;

CREATE FUNCTION cti.route_v1(p_caller text, p_dialled text DEFAULT NULL::text) RETURNS TABLE(extension text, reason text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
#variable_conflict use_column
DECLARE
    v_caller text := CASE WHEN length(p_caller) <= 64 THEN cti.normalize_phone(p_caller) END;
    v_dialled text := CASE WHEN length(p_dialled) <= 64 THEN cti.normalize_phone(p_dialled) END;
    v_clients int := 0;
    v_client bigint;
    v_manager bigint;
    v_extension text;
    v_state text;
    v_answer text;
    v_reason text;
BEGIN
    IF v_caller IS NULL OR cti.is_extension(v_caller) THEN
        v_reason := CASE WHEN v_caller IS NULL THEN 'no caller number' ELSE 'an internal caller' END;
    ELSE
        SELECT count(*), min(l.client_id), min(l.manager_id) INTO v_clients, v_client, v_manager
          FROM cti.crm_lookup(v_caller) l;
        IF v_clients = 0 THEN
            v_reason := 'unknown caller';
        ELSIF v_clients > 1 THEN
            v_reason := 'several clients share the number';
            v_client := NULL;
            v_manager := NULL;
        ELSIF v_manager IS NULL THEN
            v_reason := 'the client has no manager';
        ELSE
            v_extension := cti.crm_extension_for_employee(v_manager);
            v_state := coalesce((SELECT cti.presence_state(p) FROM cti.presence p WHERE p.extension = v_extension), 'unknown');
            IF v_extension IS NULL THEN
                v_reason := 'the manager has no extension';
            ELSIF v_state IN ('available', 'unknown') THEN
                v_answer := v_extension;
                v_reason := 'manager';
            ELSE
                v_reason := 'the manager is ' || v_state;
            END IF;
        END IF;
    END IF;
    INSERT INTO cti.route_decision (caller, dialled, client_id, manager_id, manager_extension, extension, reason)
    VALUES (v_caller, v_dialled, v_client, v_manager, v_extension, v_answer, v_reason);
    RETURN QUERY SELECT v_answer, v_reason;
END
$$;

COMMENT ON FUNCTION cti.route_v1(p_caller text, p_dialled text) IS 'Routing API v1: which extension the PBX rings first for this caller (the client''s manager when free), with the reason; NULL: its own dialplan';

CREATE FUNCTION cti.send_commands(p_commands cti.keyed_command[]) RETURNS void
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
BEGIN
    PERFORM cti.enqueue_all(ARRAY(SELECT (k).command FROM unnest(p_commands) k
                                   ORDER BY (k).frame_key, (k).step, (k).sub));
END
$$;

CREATE FUNCTION cti.set_desk_presence(p_binding cti.client_login, p_state text, p_until timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.set_presence_v1(p_state text, p_until timestamp with time zone DEFAULT NULL::timestamp with time zone) RETURNS text
    LANGUAGE sql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT cti.set_desk_presence(cti.my_binding(), p_state, p_until) $$;

COMMENT ON FUNCTION cti.set_presence_v1(p_state text, p_until timestamp with time zone) IS 'Client API v1: my desk is away, in do not disturb (until a time), or available';

CREATE FUNCTION cti.settle_dial_request(p_id uuid, p_state text, p_reason text, p_at timestamp with time zone) RETURNS text
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.settle_dial_requests(p_at timestamp with time zone) RETURNS integer
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

CREATE FUNCTION cti.streams_of(p_binding cti.client_login) RETURNS TABLE(login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
    LANGUAGE sql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
    SELECT p_binding.login, t.stream, t.id, cti.channel_name(t.kind, t.id),
           coalesce(s.last_seq, 0), coalesce(a.acked_seq, 0)
      FROM (VALUES ('commands', 'ws', p_binding.workstation_id),
                   ('notifications', 'emp', p_binding.employee_id)) AS t(stream, kind, id)
      LEFT JOIN cti.stream s ON s.target_kind = t.kind AND s.target_id = t.id
      LEFT JOIN cti.stream_ack a ON a.target_kind = t.kind AND a.target_id = t.id
     WHERE t.id IS NOT NULL
     ORDER BY t.stream
$$;

CREATE FUNCTION cti.task_day(p_task cti.callback_task) RETURNS date
    LANGUAGE sql STABLE
    RETURN (COALESCE((SELECT c.started_at FROM cti.call c WHERE (c.id = (task_day.p_task).first_call_id)), (p_task).created_at))::date;

CREATE FUNCTION cti.tg_client_login__revoke_tokens() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    UPDATE cti.gateway_token SET revoked_at = now()
     WHERE login = OLD.login AND revoked_at IS NULL;
    RETURN NULL;
END
$$;

CREATE FUNCTION cti.tg_config__refresh_phone_directory() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    PERFORM cti.refresh_phone_directory();
    RETURN NULL;
END
$$;

CREATE FUNCTION cti.tg_phone_source__sync() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $_$
DECLARE
    v_source cti.phone_source;
    v_row_id text;
BEGIN
    IF TG_NAME ~ '^pgcti_phone_[0-9]+(_truncate)?$' THEN
        SELECT * INTO STRICT v_source FROM cti.phone_source WHERE id = TG_ARGV[0]::int;
    ELSE
        SELECT * INTO STRICT v_source FROM cti.phone_source
         WHERE table_name = TG_RELID::regclass AND phone_column = TG_ARGV[0]::name;
    END IF;
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        v_row_id := to_jsonb(OLD) ->> v_source.row_column::text;
        DELETE FROM cti.phone_directory WHERE source_id = v_source.id AND row_id = v_row_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO cti.phone_directory
        SELECT * FROM cti.phone_directory_rows(v_source, to_jsonb(NEW))
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$_$;

CREATE FUNCTION cti.tg_raw_event__parse() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
BEGIN
    SELECT p.received_at, p.body, p.frame, p.dedup_key, p.parse_error
      INTO NEW.received_at, NEW.body, NEW.frame, NEW.dedup_key, NEW.parse_error
      FROM cti.parse_frames(ARRAY[NEW.source], ARRAY[NEW.received_at],
                            ARRAY[coalesce(NEW.body, NEW.frame::text)]) p;
    RETURN NEW;
END
$$;

CREATE FUNCTION cti.tg_raw_event__process() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    SET enable_seqscan TO 'off'
    SET jit TO 'off'
    SET plan_cache_mode TO 'force_generic_plan'
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

CREATE FUNCTION cti.token_binding(p_token text) RETURNS cti.client_login
    LANGUAGE plpgsql STABLE
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$
DECLARE
    v_binding cti.client_login;
BEGIN
    SELECT b.* INTO v_binding FROM cti.client_login b
     WHERE b.login = (cti.live_token(p_token, 'desk')).login;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'token refused: its login is no longer bound to a desk'
            USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    RETURN v_binding;
END
$$;

CREATE FUNCTION cti.track_callbacks(p_steps cti.call_derivation[], p_keys bigint[], p_live boolean) RETURNS cti.keyed_command[]
    LANGUAGE plpgsql
    SET search_path TO 'pg_catalog', 'pg_temp'
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

COMMENT ON FUNCTION cti.track_callbacks(p_steps cti.call_derivation[], p_keys bigint[], p_live boolean) IS 'Make, add to and close callback tasks for the calls just derived; returns the owners'' callback_task items';

CREATE FUNCTION cti.whoami_v1() RETURNS TABLE(login name, stream text, target_id bigint, channel text, last_seq bigint, acked_seq bigint)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'pg_temp'
    AS $$ SELECT * FROM cti.streams_of(cti.my_binding()) $$;

COMMENT ON FUNCTION cti.whoami_v1() IS 'Client API v1: my login, streams, LISTEN channels, last and acknowledged sequence';

CREATE TABLE cti.ami_bridge_member (
    source text NOT NULL,
    bridge_id text NOT NULL,
    member text NOT NULL,
    is_local boolean NOT NULL,
    entered_at timestamp with time zone,
    entered_seq bigint,
    left_at timestamp with time zone,
    left_seq bigint
);

COMMENT ON TABLE cti.ami_bridge_member IS 'Asterisk bridges: which channel was in which bridge, from when until when (derived; rebuild makes it again)';

CREATE TABLE cti.call_alias (
    source text NOT NULL,
    pbx_call_id text NOT NULL,
    call_id bigint NOT NULL
);

COMMENT ON TABLE cti.call_alias IS 'The PBX id of each call merged into another, and the call it went into';

CREATE TABLE cti.call_bridge (
    call_id bigint NOT NULL,
    leg_a text NOT NULL,
    leg_b text NOT NULL,
    bridged_at timestamp with time zone NOT NULL
);

CREATE TABLE cti.call_transfer (
    call_id bigint NOT NULL,
    step integer NOT NULL,
    from_extension text NOT NULL,
    to_extension text NOT NULL,
    transferred_at timestamp with time zone NOT NULL
);

CREATE VIEW cti.call_history_v1 AS
 SELECT c.id AS call_id,
    c.source,
    c.pbx_call_id,
    c.direction,
        CASE
            WHEN (NOT c.caller_withheld) THEN c.external_number
            ELSE NULL::text
        END AS external_number,
    c.dialled,
    c.client_id,
    c.client_match,
    c.started_at,
    c.answered_at,
    c.answered_by,
    c.holder_extension AS last_extension,
    c.ended_at,
    c.outcome,
    c.hangup_cause,
    c.hold_count,
    (c.answered_at - c.started_at) AS response_time,
    (c.ended_at - COALESCE(c.answered_at, c.started_at)) AS duration,
        CASE
            WHEN (c.answered_by IS NULL) THEN ARRAY[]::text[]
            ELSE (c.answered_by || ARRAY( SELECT t.to_extension
               FROM cti.call_transfer t
              WHERE (t.call_id = c.id)
              ORDER BY t.step))
        END AS extension_chain,
    cti.client_kind(c.*) AS client_kind,
    c.caller_withheld AS withheld,
    d.id AS dial_request_id,
    d.workstation_id AS dialled_from_workstation
   FROM (cti.call c
     LEFT JOIN cti.dial_request d ON (((c.direction = ANY (ARRAY['outbound'::text, 'internal'::text])) AND (d.id = cti.dial_request_of_call(c.*)))));

COMMENT ON VIEW cti.call_history_v1 IS 'Every call: number, client (and whether a client or a lead), direction, times, response time, who answered, the transfer chain, outcome';

ALTER TABLE cti.call ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.call_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.call_leg (
    source text NOT NULL,
    leg_uuid text NOT NULL,
    call_id bigint NOT NULL,
    caller text,
    caller_raw text,
    destination text,
    destination_raw text,
    created_at timestamp with time zone,
    answered_at timestamp with time zone,
    ended_at timestamp with time zone,
    hangup_cause text,
    on_hold boolean DEFAULT false NOT NULL,
    caller_is_extension boolean DEFAULT false NOT NULL,
    destination_is_extension boolean DEFAULT false NOT NULL,
    caller_withheld boolean DEFAULT false NOT NULL
);

COMMENT ON COLUMN cti.call_leg.caller_withheld IS 'The caller withheld their number (presentation prohibited, or no number): shown to no one';

CREATE TABLE cti.callback_party_key (
    party text NOT NULL,
    last_frame_key bigint NOT NULL
);

COMMENT ON TABLE cti.callback_party_key IS 'The raw event that last missed or reached each party (keeps callback tasks in frame order)';

ALTER TABLE cti.callback_task ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.callback_task_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.channel_key (
    singleton boolean DEFAULT true NOT NULL,
    key bytea NOT NULL,
    rotated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT channel_key_singleton_check CHECK (singleton)
);

COMMENT ON TABLE cti.channel_key IS 'Secret that makes LISTEN channel names unguessable; rotate with cti.rotate_channel_key()';

CREATE VIEW cti.client_contact_summary_v1 AS
 SELECT client_id,
    count(*) AS calls,
    count(*) FILTER (WHERE (direction = 'inbound'::text)) AS inbound_calls,
    count(*) FILTER (WHERE ((outcome = ANY (ARRAY['missed'::text, 'abandoned'::text, 'busy'::text, 'rejected'::text])) AND (direction = 'inbound'::text))) AS missed_calls,
    avg(response_time) FILTER (WHERE (direction = 'inbound'::text)) AS avg_response_time,
    max(started_at) AS last_call_at,
    max(started_at) FILTER (WHERE ((outcome = ANY (ARRAY['missed'::text, 'abandoned'::text, 'busy'::text, 'rejected'::text])) AND (direction = 'inbound'::text))) AS last_missed_at,
    COALESCE((max(started_at) FILTER (WHERE ((outcome = ANY (ARRAY['missed'::text, 'abandoned'::text, 'busy'::text, 'rejected'::text])) AND (direction = 'inbound'::text))) > COALESCE(max(started_at) FILTER (WHERE (outcome = 'answered'::text)), '-infinity'::timestamp with time zone)), false) AS missed_not_called_back
   FROM cti.call_history_v1 h
  WHERE ((client_id IS NOT NULL) AND (client_kind = 'client'::text))
  GROUP BY client_id;

COMMENT ON VIEW cti.client_contact_summary_v1 IS 'Per client: calls, missed calls, average response time, missed and not called back';

CREATE VIEW cti.daily_call_stats_v1 AS
 WITH calls AS (
         SELECT (c_1.started_at)::date AS day,
            c_1.dialled AS line,
            c_1.client_match,
                CASE
                    WHEN (c_1.answered_at IS NOT NULL) THEN 'answered'::text
                    ELSE c_1.outcome
                END AS outcome,
            (c_1.answered_at - c_1.started_at) AS response_time
           FROM cti.call c_1
          WHERE ((c_1.direction = 'inbound'::text) AND (c_1.started_at IS NOT NULL))
        ), per_calls AS (
         SELECT calls.day,
            calls.line,
            (GROUPING(calls.line) = 1) AS all_lines,
            count(*) AS inbound_calls,
            count(*) FILTER (WHERE (calls.outcome = 'answered'::text)) AS answered,
            count(*) FILTER (WHERE (calls.outcome = 'missed'::text)) AS missed,
            count(*) FILTER (WHERE (calls.outcome = 'abandoned'::text)) AS abandoned,
            count(*) FILTER (WHERE (calls.outcome = 'busy'::text)) AS busy,
            count(*) FILTER (WHERE (calls.outcome = 'rejected'::text)) AS rejected,
            round(((count(*) FILTER (WHERE (calls.outcome = 'answered'::text)))::numeric / (NULLIF(count(*) FILTER (WHERE (calls.outcome = ANY (ARRAY['answered'::text, 'missed'::text, 'abandoned'::text, 'busy'::text, 'rejected'::text]))), 0))::numeric), 3) AS answer_rate,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY calls.response_time) FILTER (WHERE (calls.outcome = 'answered'::text)) AS response_p50,
            percentile_cont((0.9)::double precision) WITHIN GROUP (ORDER BY calls.response_time) FILTER (WHERE (calls.outcome = 'answered'::text)) AS response_p90,
            count(*) FILTER (WHERE (calls.client_match = 'new'::text)) AS leads_registered
           FROM calls
          GROUP BY GROUPING SETS ((calls.day, calls.line), (calls.day))
        ), tasks AS (
         SELECT cti.task_day(t_1.*) AS day,
            t_1.dialled AS line,
            t_1.closed_how,
            ((t_1.closed_how IS NULL) AND (t_1.due_at < now())) AS past_due,
            (c_1.answered_at - t_1.created_at) AS time_to_callback
           FROM (cti.callback_task t_1
             LEFT JOIN cti.call c_1 ON ((c_1.id = t_1.closed_by_call_id)))
        ), per_tasks AS (
         SELECT tasks.day,
            tasks.line,
            (GROUPING(tasks.line) = 1) AS all_lines,
            count(*) FILTER (WHERE (tasks.closed_how = 'outbound_answered'::text)) AS callbacks_made,
            percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY tasks.time_to_callback) FILTER (WHERE (tasks.closed_how = 'outbound_answered'::text)) AS time_to_callback_p50,
            count(*) FILTER (WHERE (tasks.closed_how = 'inbound_answered'::text)) AS reached_when_they_called_again,
            count(*) FILTER (WHERE tasks.past_due) AS missed_never_called_back
           FROM tasks
          GROUP BY GROUPING SETS ((tasks.day, tasks.line), (tasks.day))
        )
 SELECT COALESCE(c.day, t.day) AS day,
    COALESCE(c.all_lines, t.all_lines) AS all_lines,
    COALESCE(c.line, t.line) AS line,
    COALESCE(c.inbound_calls, (0)::bigint) AS inbound_calls,
    COALESCE(c.answered, (0)::bigint) AS answered,
    COALESCE(c.missed, (0)::bigint) AS missed,
    COALESCE(c.abandoned, (0)::bigint) AS abandoned,
    COALESCE(c.busy, (0)::bigint) AS busy,
    c.answer_rate,
    c.response_p50,
    c.response_p90,
    COALESCE(t.callbacks_made, (0)::bigint) AS callbacks_made,
    t.time_to_callback_p50,
    COALESCE(t.reached_when_they_called_again, (0)::bigint) AS reached_when_they_called_again,
    COALESCE(t.missed_never_called_back, (0)::bigint) AS missed_never_called_back,
    COALESCE(c.leads_registered, (0)::bigint) AS leads_registered,
    COALESCE(c.rejected, (0)::bigint) AS rejected
   FROM (per_calls c
     FULL JOIN per_tasks t ON (((t.day = c.day) AND (t.all_lines = c.all_lines) AND (NOT (t.line IS DISTINCT FROM c.line)))));

COMMENT ON VIEW cti.daily_call_stats_v1 IS 'Per day and line (and per day, all_lines): inbound, answered, missed, abandoned, busy, rejected, answer rate, response p50/p90, callbacks made, time to callback, never called back, leads';

CREATE TABLE cti.doorbell_skip (
    skipped_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    doorbells integer NOT NULL,
    queue_usage real NOT NULL
);

COMMENT ON TABLE cti.doorbell_skip IS 'Doorbells left out because the NOTIFY queue was fuller than cti.config.doorbell_max_queue_usage; the commands themselves are in cti.outbox';

CREATE VIEW cti.employee_call_stats_v1 AS
 WITH work AS (
         SELECT (c.started_at)::date AS day,
            c.answered_by AS extension,
            c.direction,
            (c.answered_at - c.started_at) AS response_time,
            NULL::interval AS time_to_callback,
            false AS callback
           FROM cti.call c
          WHERE ((c.answered_by IS NOT NULL) AND (c.started_at IS NOT NULL))
        UNION ALL
         SELECT cti.task_day(t.*) AS task_day,
            t.closed_by_extension,
            'callback'::text,
            NULL::interval,
            (t.closed_at - t.created_at),
            true
           FROM cti.callback_task t
          WHERE ((t.closed_how = 'outbound_answered'::text) AND (t.closed_by_extension IS NOT NULL))
        )
 SELECT day,
    extension,
    count(*) FILTER (WHERE (direction = 'inbound'::text)) AS answered_inbound,
    percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE (direction = 'inbound'::text)) AS response_p50,
    percentile_cont((0.9)::double precision) WITHIN GROUP (ORDER BY response_time) FILTER (WHERE (direction = 'inbound'::text)) AS response_p90,
    count(*) FILTER (WHERE (direction = 'outbound'::text)) AS answered_outbound,
    count(*) FILTER (WHERE callback) AS callbacks_made,
    percentile_cont((0.5)::double precision) WITHIN GROUP (ORDER BY time_to_callback) FILTER (WHERE callback) AS time_to_callback_p50
   FROM work
  GROUP BY day, extension;

COMMENT ON VIEW cti.employee_call_stats_v1 IS 'Per day and extension: inbound calls answered, response p50/p90, outbound calls answered, callbacks made and their time to callback';

CREATE TABLE cti.event_note (
    raw_event_id bigint CONSTRAINT event_outcome_raw_event_id_not_null NOT NULL,
    status text CONSTRAINT event_outcome_status_not_null NOT NULL,
    detail text,
    processed_at timestamp with time zone DEFAULT clock_timestamp() CONSTRAINT event_outcome_processed_at_not_null NOT NULL,
    CONSTRAINT event_note_status_check CHECK ((status = ANY (ARRAY['processed'::text, 'ignored'::text, 'failed'::text])))
);

COMMENT ON TABLE cti.event_note IS 'What processing had to say about a raw event: ignored (with why), failed (with the error), or processed with a detail; a clean frame has none (read cti.event_outcome)';

CREATE VIEW cti.event_outcome AS
 SELECT r.id AS raw_event_id,
    COALESCE(n.status, 'processed'::text) AS status,
    n.detail,
    n.processed_at
   FROM (cti.raw_event r
     LEFT JOIN cti.event_note n ON ((n.raw_event_id = r.id)));

COMMENT ON VIEW cti.event_outcome IS 'Processing result beside each raw event: processed, ignored (with why) or failed (with the error)';

ALTER TABLE cti.gateway_token ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.gateway_token_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.ingester_login (
    login name NOT NULL,
    registered_at timestamp with time zone DEFAULT now() NOT NULL
);

COMMENT ON TABLE cti.ingester_login IS 'Logins (members of cti_ingester) that may write raw events in this database';

CREATE TABLE cti.logic_file (
    name text NOT NULL,
    checksum text NOT NULL,
    functions text[] NOT NULL,
    applied_at timestamp with time zone NOT NULL
);

COMMENT ON TABLE cti.logic_file IS 'Bookkeeping of pgcti migrate: the db/logic files applied, their checksums and functions';

CREATE VIEW cti.manager_answer_share_v1 AS
 WITH calls AS (
         SELECT (c.started_at)::date AS day,
            ((c.client_card ->> 'manager_id'::text))::bigint AS manager_id,
            (c.client_card ->> 'manager_surname'::text) AS manager_surname,
            c.answered_by,
            c.ended_at,
            c.outcome
           FROM cti.call c
          WHERE ((c.direction = 'inbound'::text) AND (c.client_match = 'exact'::text) AND (c.started_at IS NOT NULL) AND ((c.client_card ->> 'manager_id'::text) IS NOT NULL))
        ), managers AS (
         SELECT m_1.manager_id,
            cti.crm_extension_for_employee(m_1.manager_id) AS extension
           FROM ( SELECT DISTINCT calls.manager_id
                   FROM calls) m_1
        )
 SELECT k.day,
    k.manager_id,
    m.extension AS manager_extension,
    count(*) AS calls,
    count(*) FILTER (WHERE (k.answered_by = m.extension)) AS answered_by_manager,
    count(*) FILTER (WHERE ((k.answered_by IS NOT NULL) AND (k.answered_by IS DISTINCT FROM m.extension))) AS answered_by_others,
    count(*) FILTER (WHERE ((k.answered_by IS NULL) AND (k.ended_at IS NOT NULL))) AS not_answered,
    round(((count(*) FILTER (WHERE (k.answered_by = m.extension)))::numeric / (NULLIF(count(*) FILTER (WHERE ((k.ended_at IS NOT NULL) OR (k.answered_by IS NOT NULL))), 0))::numeric), 3) AS manager_share,
    max(k.manager_surname) AS manager_surname
   FROM (calls k
     JOIN managers m ON ((m.manager_id = k.manager_id)))
  GROUP BY k.day, k.manager_id, m.extension;

COMMENT ON VIEW cti.manager_answer_share_v1 IS 'Per day and manager: known clients'' inbound calls, answered by their own manager, by another, not answered; the manager''s share';

CREATE TABLE cti.outbox (
    target_kind text NOT NULL,
    target_id bigint NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL,
    call_id bigint NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT outbox_type_check CHECK ((type = ANY (ARRAY['ring'::text, 'open_card'::text, 'close_card'::text, 'call_ended'::text, 'callback_task'::text])))
);

COMMENT ON TABLE cti.outbox IS 'Every command and notification for CRM clients, per target in sequence order; clients pull and ack';

ALTER TABLE cti.phone_source ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.phone_source_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.queue_attempt (
    source text NOT NULL,
    agent_leg text NOT NULL,
    caller_leg text NOT NULL,
    queue text NOT NULL,
    agent text,
    agent_interface text,
    called_at timestamp with time zone,
    ring_seconds numeric,
    result text,
    CONSTRAINT queue_attempt_result_check CHECK ((result = ANY (ARRAY['answered'::text, 'no_answer'::text])))
);

COMMENT ON TABLE cti.queue_attempt IS 'Each queue member rung for a caller: when, for how long, answered or rang out';

CREATE TABLE cti.queue_pause (
    id bigint NOT NULL,
    queue text NOT NULL,
    agent text NOT NULL,
    paused_at timestamp with time zone NOT NULL,
    resumed_at timestamp with time zone,
    reason text
);

COMMENT ON TABLE cti.queue_pause IS 'Each pause of a queue member (QueueMemberPause), with its reason, until it resumed';

CREATE VIEW cti.queue_agent_stats_v1 AS
 WITH work AS (
         SELECT a.queue,
            (a.called_at)::date AS day,
            a.agent,
            1 AS rung,
            ((a.result = 'answered'::text))::integer AS answered,
            ((a.result = 'no_answer'::text))::integer AS rang_out,
            0 AS talk_seconds,
            0 AS pauses,
            (0)::numeric AS paused_seconds
           FROM cti.queue_attempt a
          WHERE ((a.called_at IS NOT NULL) AND (a.agent IS NOT NULL))
        UNION ALL
         SELECT q.queue,
            (q.joined_at)::date AS joined_at,
            q.agent,
            0,
            0,
            0,
            COALESCE(q.talk_seconds, 0) AS "coalesce",
            0,
            0
           FROM cti.queue_call q
          WHERE ((q.agent IS NOT NULL) AND (q.joined_at IS NOT NULL))
        UNION ALL
         SELECT p.queue,
            (p.paused_at)::date AS paused_at,
            p.agent,
            0,
            0,
            0,
            0,
            1,
            EXTRACT(epoch FROM (COALESCE(p.resumed_at, now()) - p.paused_at)) AS "extract"
           FROM cti.queue_pause p
        )
 SELECT queue,
    day,
    agent,
    sum(rung) AS rung,
    sum(answered) AS answered,
    sum(rang_out) AS rang_out,
    sum(talk_seconds) AS talk_seconds,
    sum(pauses) AS pauses,
    round(sum(paused_seconds), 0) AS paused_seconds
   FROM work
  GROUP BY queue, day, agent;

COMMENT ON VIEW cti.queue_agent_stats_v1 IS 'Per queue, day and agent: rung, answered, rang out, talk time, pauses and their time';

ALTER TABLE cti.queue_pause ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.queue_pause_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW cti.queue_stats_v1 AS
 SELECT queue,
    day,
    hour,
    offered,
    answered,
    abandoned,
    abandoned_short,
    timed_out,
    other_exits,
    answered_within_target,
    service_level,
    avg_wait_seconds,
    longest_wait_seconds,
    avg_handle_seconds,
    exited_by_key
   FROM cti.queue_stats_between('-infinity'::timestamp with time zone, 'infinity'::timestamp with time zone) queue_stats_between(queue, day, hour, offered, answered, abandoned, abandoned_short, timed_out, other_exits, answered_within_target, service_level, avg_wait_seconds, longest_wait_seconds, avg_handle_seconds, exited_by_key);

COMMENT ON VIEW cti.queue_stats_v1 IS 'Per queue and day (hour NULL), and per hour: offered, answered, abandoned (short ones apart), timed out, other exits (by key apart), service level, average and longest wait, handle time';

ALTER TABLE cti.raw_event ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.raw_event_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.recording (
    source text NOT NULL,
    call_key text NOT NULL,
    file text NOT NULL,
    channel_leg text,
    started_at timestamp with time zone,
    ready_at timestamp with time zone
);

COMMENT ON TABLE cti.recording IS 'A reference to each call recording (never a signed URL): the file or record id, and when it was complete';

CREATE TABLE cti.recording_play (
    id bigint NOT NULL,
    played_at timestamp with time zone DEFAULT now() NOT NULL,
    login name,
    token_id bigint,
    call_id bigint NOT NULL,
    file text NOT NULL,
    allowed boolean NOT NULL,
    why text NOT NULL
);

COMMENT ON TABLE cti.recording_play IS 'Every request to play a recording, allowed or not, who and when (recordings are personal data)';

ALTER TABLE cti.recording_play ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.recording_play_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE TABLE cti.registered_number (
    e164 text NOT NULL,
    client_id bigint NOT NULL,
    call_id bigint NOT NULL,
    registered_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE cti.route_decision (
    id bigint NOT NULL,
    asked_at timestamp with time zone DEFAULT now() NOT NULL,
    caller text,
    dialled text,
    client_id bigint,
    manager_id bigint,
    manager_extension text,
    extension text,
    reason text NOT NULL
);

COMMENT ON TABLE cti.route_decision IS 'Every routing answer pgcti gave the PBX, with its reason (joined later with what happened to the call)';

ALTER TABLE cti.route_decision ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME cti.route_decision_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

CREATE VIEW cti.route_decisions_v1 AS
 SELECT d.id AS decision_id,
    d.asked_at,
    d.caller,
    d.dialled,
    d.client_id,
    d.manager_id,
    d.manager_extension,
    d.extension,
    d.reason,
    c.id AS call_id,
    c.answered_by,
    c.outcome,
        CASE
            WHEN (c.id IS NULL) THEN NULL::text
            WHEN ((d.manager_extension IS NOT NULL) AND (c.answered_by = d.manager_extension)) THEN 'answered by the manager'::text
            WHEN (c.answered_by IS NOT NULL) THEN 'answered by another'::text
            WHEN (c.ended_at IS NOT NULL) THEN 'not answered'::text
            ELSE 'in progress'::text
        END AS what_happened
   FROM (cti.route_decision d
     LEFT JOIN LATERAL ( SELECT c_1.id,
            c_1.source,
            c_1.pbx_call_id,
            c_1.direction,
            c_1.external_number,
            c_1.external_number_raw,
            c_1.dialled,
            c_1.client_id,
            c_1.client_match,
            c_1.client_candidates,
            c_1.client_card,
            c_1.started_at,
            c_1.answered_at,
            c_1.answered_by,
            c_1.holder_extension,
            c_1.ended_at,
            c_1.outcome,
            c_1.hangup_cause,
            c_1.hold_count,
            c_1.last_event_at,
            c_1.pbx_ended,
            c_1.ring_notified,
            c_1.card_workstation_id,
            c_1.routing_note,
            c_1.caller_withheld
           FROM cti.call c_1
          WHERE ((c_1.external_number = d.caller) AND (c_1.direction = 'inbound'::text) AND ((c_1.started_at >= (d.asked_at - '00:00:30'::interval)) AND (c_1.started_at <= (d.asked_at + '00:00:30'::interval))) AND ((d.dialled IS NULL) OR (c_1.dialled IS NULL) OR (c_1.dialled = d.dialled) OR (cti.normalize_phone(c_1.dialled) = d.dialled)))
          ORDER BY (abs(EXTRACT(epoch FROM (c_1.started_at - d.asked_at)))), c_1.id
         LIMIT 1) c ON (true));

COMMENT ON VIEW cti.route_decisions_v1 IS 'Every routing answer with its reason and the call that followed: answered by the manager, by another, or not';

CREATE VIEW cti.sales_funnel_v1 AS
 WITH first_calls AS (
         SELECT DISTINCT ON (p.party) p.party,
            p.client_id,
            p.started_at,
            p.dialled,
            (p.client_match = 'new'::text) AS registered,
            ((p.kind = 'lead'::text) AND (p.client_match <> 'new'::text)) AS known_lead
           FROM ( SELECT cti.callback_party(
                        CASE
                            WHEN (cti.client_kind(c.*) = 'client'::text) THEN c.client_id
                            ELSE NULL::bigint
                        END, c.external_number) AS party,
                        CASE
                            WHEN (cti.client_kind(c.*) = 'client'::text) THEN c.client_id
                            ELSE NULL::bigint
                        END AS client_id,
                    cti.client_kind(c.*) AS kind,
                    c.started_at,
                    c.dialled,
                    c.client_match
                   FROM cti.call c
                  WHERE ((c.direction = 'inbound'::text) AND (c.started_at IS NOT NULL) AND (c.external_number IS NOT NULL) AND (NOT cti.is_extension(c.external_number)))) p
          ORDER BY p.party, p.started_at
        ), deals AS MATERIALIZED (
         SELECT crm_deals.client_id,
            crm_deals.manager_id,
            crm_deals.opened_at,
            crm_deals.won_at
           FROM cti.crm_deals() crm_deals(client_id, manager_id, opened_at, won_at)
        ), stages AS (
         SELECT (date_trunc('month'::text, f.started_at))::date AS month,
            f.dialled AS first_line,
            min(x.manager_id) AS manager_id,
            f.registered,
            f.known_lead,
            (count(x.client_id) > 0) AS with_deal,
            COALESCE(bool_or((x.won_at IS NOT NULL)), false) AS won
           FROM (first_calls f
             LEFT JOIN deals x ON (((x.client_id = f.client_id) AND (x.opened_at >= f.started_at))))
          GROUP BY f.party, f.started_at, f.dialled, f.registered, f.known_lead
        )
 SELECT month,
        CASE
            WHEN (GROUPING(first_line) = 0) THEN 'line'::text
            WHEN (GROUPING(manager_id) = 0) THEN 'manager'::text
            ELSE 'all'::text
        END AS by,
    first_line,
    manager_id,
    count(*) AS callers,
    count(*) FILTER (WHERE registered) AS leads,
    count(*) FILTER (WHERE (registered AND with_deal)) AS with_deal,
    count(*) FILTER (WHERE (registered AND won)) AS won,
    round(((count(*) FILTER (WHERE registered))::numeric / (NULLIF(count(*), 0))::numeric), 3) AS lead_rate,
    round(((count(*) FILTER (WHERE (registered AND with_deal)))::numeric / (NULLIF(count(*) FILTER (WHERE registered), 0))::numeric), 3) AS deal_rate,
    round(((count(*) FILTER (WHERE (registered AND won)))::numeric / (NULLIF(count(*) FILTER (WHERE (registered AND with_deal)), 0))::numeric), 3) AS win_rate,
    count(*) FILTER (WHERE known_lead) AS known_leads
   FROM stages
  GROUP BY GROUPING SETS ((month, first_line), (month, manager_id), (month));

COMMENT ON VIEW cti.sales_funnel_v1 IS 'Per month of first call (by line, by deal manager, all): callers; leads registered by the call; of those, with a deal since; of those, won; rates; callers the CRM already had as a lead';

CREATE TABLE cti.stream (
    target_kind text NOT NULL,
    target_id bigint NOT NULL,
    last_seq bigint DEFAULT 0 NOT NULL,
    CONSTRAINT stream_target_kind_check CHECK ((target_kind = ANY (ARRAY['ws'::text, 'emp'::text])))
);

CREATE TABLE cti.stream_ack (
    target_kind text NOT NULL,
    target_id bigint NOT NULL,
    acked_seq bigint DEFAULT 0 NOT NULL,
    acked_at timestamp with time zone,
    CONSTRAINT stream_ack_target_kind_check CHECK ((target_kind = ANY (ARRAY['ws'::text, 'emp'::text])))
);

COMMENT ON TABLE cti.stream_ack IS 'How far each client stream is acknowledged; apart from cti.stream so that acking never blocks numbering';

ALTER TABLE ONLY cti.ami_bridge_member
    ADD CONSTRAINT ami_bridge_member_pkey PRIMARY KEY (source, bridge_id, member);

ALTER TABLE ONLY cti.call_alias
    ADD CONSTRAINT call_alias_pkey PRIMARY KEY (source, pbx_call_id);

ALTER TABLE ONLY cti.call_bridge
    ADD CONSTRAINT call_bridge_pkey PRIMARY KEY (call_id, leg_a, leg_b);

ALTER TABLE ONLY cti.call_leg
    ADD CONSTRAINT call_leg_pkey PRIMARY KEY (source, leg_uuid);

ALTER TABLE ONLY cti.call
    ADD CONSTRAINT call_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.call
    ADD CONSTRAINT call_source_pbx_call_id_key UNIQUE (source, pbx_call_id);

ALTER TABLE ONLY cti.call_transfer
    ADD CONSTRAINT call_transfer_pkey PRIMARY KEY (call_id, step);

ALTER TABLE ONLY cti.callback_party_key
    ADD CONSTRAINT callback_party_key_pkey PRIMARY KEY (party);

ALTER TABLE ONLY cti.callback_task
    ADD CONSTRAINT callback_task_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.channel_key
    ADD CONSTRAINT channel_key_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY cti.client_login
    ADD CONSTRAINT client_login_pkey PRIMARY KEY (login);

ALTER TABLE ONLY cti.config
    ADD CONSTRAINT config_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY cti.dial_request
    ADD CONSTRAINT dial_request_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.event_note
    ADD CONSTRAINT event_note_pkey PRIMARY KEY (raw_event_id);

ALTER TABLE ONLY cti.gateway_token
    ADD CONSTRAINT gateway_token_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.gateway_token
    ADD CONSTRAINT gateway_token_token_sha256_key UNIQUE (token_sha256);

ALTER TABLE ONLY cti.ingester_login
    ADD CONSTRAINT ingester_login_pkey PRIMARY KEY (login);

ALTER TABLE ONLY cti.logic_file
    ADD CONSTRAINT logic_file_pkey PRIMARY KEY (name);

ALTER TABLE ONLY cti.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (target_kind, target_id, seq);

ALTER TABLE ONLY cti.phone_directory
    ADD CONSTRAINT phone_directory_pkey PRIMARY KEY (source_id, row_id, e164);

ALTER TABLE ONLY cti.phone_source
    ADD CONSTRAINT phone_source_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.phone_source
    ADD CONSTRAINT phone_source_table_name_phone_column_key UNIQUE (table_name, phone_column);

ALTER TABLE ONLY cti.presence
    ADD CONSTRAINT presence_pkey PRIMARY KEY (extension);

ALTER TABLE ONLY cti.queue_attempt
    ADD CONSTRAINT queue_attempt_pkey PRIMARY KEY (source, agent_leg);

ALTER TABLE ONLY cti.queue_call
    ADD CONSTRAINT queue_call_pkey PRIMARY KEY (source, caller_leg, queue);

ALTER TABLE ONLY cti.queue_pause
    ADD CONSTRAINT queue_pause_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.queue_setting
    ADD CONSTRAINT queue_setting_pkey PRIMARY KEY (queue);

ALTER TABLE ONLY cti.raw_event
    ADD CONSTRAINT raw_event_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.recording
    ADD CONSTRAINT recording_pkey PRIMARY KEY (source, call_key, file);

ALTER TABLE ONLY cti.recording_play
    ADD CONSTRAINT recording_play_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.registered_number
    ADD CONSTRAINT registered_number_pkey PRIMARY KEY (e164);

ALTER TABLE ONLY cti.route_decision
    ADD CONSTRAINT route_decision_pkey PRIMARY KEY (id);

ALTER TABLE ONLY cti.stream_ack
    ADD CONSTRAINT stream_ack_pkey PRIMARY KEY (target_kind, target_id);

ALTER TABLE ONLY cti.stream
    ADD CONSTRAINT stream_pkey PRIMARY KEY (target_kind, target_id);

CREATE INDEX ami_bridge_member_member ON cti.ami_bridge_member USING btree (member, source);

CREATE INDEX call_alias_call ON cti.call_alias USING btree (call_id);

CREATE INDEX call_bridge_leg_a ON cti.call_bridge USING btree (leg_a);

CREATE INDEX call_bridge_leg_b ON cti.call_bridge USING btree (leg_b);

CREATE INDEX call_client ON cti.call USING btree (client_id, started_at);

CREATE INDEX call_leg_call ON cti.call_leg USING btree (call_id);

CREATE INDEX call_leg_open_by_caller ON cti.call_leg USING btree (source, COALESCE(caller, ''::text), created_at) WHERE (ended_at IS NULL);

CREATE INDEX call_open ON cti.call USING btree (last_event_at) WHERE (ended_at IS NULL);

CREATE INDEX call_started ON cti.call USING btree (started_at);

CREATE INDEX callback_task_created ON cti.callback_task USING btree (created_at);

CREATE INDEX callback_task_first_call ON cti.callback_task USING btree (first_call_id);

CREATE INDEX callback_task_last_call ON cti.callback_task USING btree (last_call_id);

CREATE UNIQUE INDEX callback_task_open ON cti.callback_task USING btree (party) WHERE (closed_at IS NULL);

CREATE INDEX callback_task_owner ON cti.callback_task USING btree (owner_id) WHERE (closed_at IS NULL);

CREATE INDEX dial_request_by_number ON cti.dial_request USING btree (number, sent_at);

CREATE INDEX dial_request_of_login ON cti.dial_request USING btree (login, requested_at);

CREATE INDEX dial_request_sent ON cti.dial_request USING btree (sent_at) WHERE (state = 'sent'::text);

CREATE INDEX dial_request_waiting ON cti.dial_request USING btree (requested_at) WHERE (state = 'requested'::text);

CREATE INDEX gateway_token_login ON cti.gateway_token USING btree (login);

CREATE INDEX phone_directory_e164 ON cti.phone_directory USING btree (e164) INCLUDE (crm_key);

CREATE INDEX queue_attempt_called ON cti.queue_attempt USING btree (called_at);

CREATE INDEX queue_call_joined ON cti.queue_call USING btree (joined_at);

CREATE INDEX queue_pause_open ON cti.queue_pause USING btree (queue, agent) WHERE (resumed_at IS NULL);

CREATE UNIQUE INDEX raw_event_dedup ON cti.raw_event USING btree (source, dedup_key);

CREATE INDEX recording_channel ON cti.recording USING btree (source, channel_leg) WHERE (ready_at IS NULL);

CREATE INDEX route_decision_asked ON cti.route_decision USING btree (asked_at);

CREATE INDEX route_decision_caller ON cti.route_decision USING btree (caller, asked_at);

CREATE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event FOR EACH ROW WHEN ((new.dedup_key IS NULL)) EXECUTE FUNCTION cti.tg_raw_event__parse();

CREATE TRIGGER _100_refresh_phone_directory AFTER UPDATE OF default_country_code, trunk_prefix, international_prefixes, national_digits, extension_max_digits ON cti.config FOR EACH ROW WHEN ((((((old.default_country_code IS DISTINCT FROM new.default_country_code) OR (old.trunk_prefix IS DISTINCT FROM new.trunk_prefix)) OR (old.international_prefixes IS DISTINCT FROM new.international_prefixes)) OR (old.national_digits IS DISTINCT FROM new.national_digits)) OR (old.extension_max_digits IS DISTINCT FROM new.extension_max_digits))) EXECUTE FUNCTION cti.tg_config__refresh_phone_directory();

CREATE TRIGGER _500_process AFTER INSERT ON cti.raw_event REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION cti.tg_raw_event__process();

CREATE TRIGGER _500_revoke_tokens AFTER DELETE OR UPDATE OF login, workstation_id, employee_id ON cti.client_login FOR EACH ROW EXECUTE FUNCTION cti.tg_client_login__revoke_tokens();

ALTER TABLE ONLY cti.call_alias
    ADD CONSTRAINT call_alias_call_id_fkey FOREIGN KEY (call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.call_bridge
    ADD CONSTRAINT call_bridge_call_id_fkey FOREIGN KEY (call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.call_leg
    ADD CONSTRAINT call_leg_call_id_fkey FOREIGN KEY (call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.call_transfer
    ADD CONSTRAINT call_transfer_call_id_fkey FOREIGN KEY (call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.callback_task
    ADD CONSTRAINT callback_task_closed_by_call_id_fkey FOREIGN KEY (closed_by_call_id) REFERENCES cti.call(id) ON DELETE SET NULL;

ALTER TABLE ONLY cti.callback_task
    ADD CONSTRAINT callback_task_first_call_id_fkey FOREIGN KEY (first_call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.callback_task
    ADD CONSTRAINT callback_task_last_call_id_fkey FOREIGN KEY (last_call_id) REFERENCES cti.call(id) ON DELETE CASCADE;

ALTER TABLE ONLY cti.event_note
    ADD CONSTRAINT event_note_raw_event_id_fkey FOREIGN KEY (raw_event_id) REFERENCES cti.raw_event(id);

ALTER TABLE ONLY cti.outbox
    ADD CONSTRAINT outbox_target_kind_target_id_fkey FOREIGN KEY (target_kind, target_id) REFERENCES cti.stream(target_kind, target_id);

ALTER TABLE ONLY cti.phone_directory
    ADD CONSTRAINT phone_directory_source_id_fkey FOREIGN KEY (source_id) REFERENCES cti.phone_source(id) ON DELETE CASCADE;

GRANT USAGE ON SCHEMA cti TO cti_ingester;
GRANT USAGE ON SCHEMA cti TO cti_client;
GRANT USAGE ON SCHEMA cti TO cti_gateway;
GRANT USAGE ON SCHEMA cti TO cti_dialer;
GRANT USAGE ON SCHEMA cti TO cti_router;
GRANT USAGE ON SCHEMA cti TO cti_reader;

GRANT SELECT(id) ON TABLE cti.call TO cti_reader;

GRANT SELECT(started_at) ON TABLE cti.call TO cti_reader;

REVOKE ALL ON FUNCTION cti.ack(p_kind text, p_id bigint, p_seq bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ack_commands_v1(p_seq bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.ack_commands_v1(p_seq bigint) TO cti_client;

REVOKE ALL ON FUNCTION cti.ack_notifications_v1(p_seq bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.ack_notifications_v1(p_seq bigint) TO cti_client;

REVOKE ALL ON FUNCTION cti.ami_block(p_body text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_is_withheld_number(p_caller_id text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_is_outside_number(p_caller_id text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_peer(p_channel text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_device_by_evidence(p_channel text, p_dial_string text, p_caller_id text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_dialled_number(p_fields jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_extension(p_channel text, p_context text, p_dial_string text, p_caller_id text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_fields(p_frame jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_is_local(p_channel text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_local_wire(p_channel text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_member_extension(p_interface text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_repeated_keys(p_frame jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ami_who_rings(p_source text, p_fact cti.fact) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.apply_asterisk_fact(p_source text, p_fact cti.fact, p_seq bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.apply_fact(p_source text, p_fact cti.fact) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.apply_facts(p_source text, p_facts cti.frame_fact[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.apply_onlinepbx2_fact(p_source text, p_fact cti.fact) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.are_regular_expressions(p_patterns text[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.attach_phone_column(p_table regclass, p_phone_column name, p_key_column name, p_row_column name) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.call_of_key(p_source text, p_key text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.client_kind(p_call cti.call) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.client_kind(p_call cti.call) TO cti_reader;

REVOKE ALL ON FUNCTION cti.dial_request_of_call(p_call cti.call) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.dial_request_of_call(p_call cti.call) TO cti_reader;

REVOKE ALL ON FUNCTION cti.call_payload(p_call cti.call) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.callback_owner(p_call cti.call, OUT owner_id bigint, OUT rule text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.callback_party(p_client_id bigint, p_e164 text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.callback_party(p_client_id bigint, p_e164 text) TO cti_reader;

REVOKE ALL ON FUNCTION cti.callback_payload(p_task cti.callback_task, p_call cti.call) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.callback_tasks_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION cti.callback_tasks_v1() TO cti_client;

REVOKE ALL ON FUNCTION cti.change_presence(p_extension text, p_field text, p_state text, p_reason text, p_until timestamp with time zone, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.channel_name(p_kind text, p_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.correlate_onlinepbx2(p_source text, p_fact cti.fact) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_deals() FROM PUBLIC;
GRANT ALL ON FUNCTION cti.crm_deals() TO cti_reader;

REVOKE ALL ON FUNCTION cti.crm_employee_name(p_employee_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_extension_for_channel(p_channel text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.crm_extension_for_employee(p_employee_id bigint) TO cti_reader;

REVOKE ALL ON FUNCTION cti.crm_extension_for_workstation(p_workstation_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_line_owner(p_dialled text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_lookup(p_e164 text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_register_unknown(p_e164 text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_ring_recipients(p_dialled text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_workstation_for_extension(p_extension text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.crm_workstation_name(p_workstation_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.derive_call(p_call_id bigint, p_at timestamp with time zone, p_live boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.derive_calls(p_calls bigint[], p_ats timestamp with time zone[], p_keys bigint[], p_live boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.detach_phone_column(p_table regclass, p_phone_column name) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_claim_v1(p_edge text, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.dial_claim_v1(p_edge text, p_limit integer) TO cti_dialer;

REVOKE ALL ON FUNCTION cti.dial_for(p_binding cti.client_login, p_number text, p_client_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_outcome_from_ami(p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_outcome_from_edge(p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_outcome_from_onlinepbx2(p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_request_call(p_request cti.dial_request, OUT call_id bigint, OUT link text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_requests_of(p_login name, p_since interval) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.dial_requests_v1(p_since interval) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.dial_requests_v1(p_since interval) TO cti_client;

REVOKE ALL ON FUNCTION cti.dial_v1(p_number text, p_client_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.dial_v1(p_number text, p_client_id bigint) TO cti_client;

REVOKE ALL ON FUNCTION cti.end_stale_calls(p_now timestamp with time zone, p_live boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.enqueue_all(p_commands cti.command[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.epoch_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION cti.epoch_v1() TO cti_client;

REVOKE ALL ON FUNCTION cti.facts_from_asterisk(p_frame jsonb, p_received timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.facts_from_onlinepbx2(p_frame jsonb, p_received timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.facts_from_onlinepbx3(p_frame jsonb, p_received timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.gateway_ack(p_token text, p_stream text, p_seq bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_ack(p_token text, p_stream text, p_seq bigint) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_ack_v1(p_token text, p_stream text, p_seq bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_ack_v1(p_token text, p_stream text, p_seq bigint) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_contacts(p_token text, p_call_id bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_contacts(p_token text, p_call_id bigint, p_limit integer) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_contacts_v1(p_token text, p_call_id bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_contacts_v1(p_token text, p_call_id bigint, p_limit integer) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_desk_v1(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_desk_v1(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_dial_requests_v1(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_dial_requests_v1(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_dial_v1(p_token text, p_number text, p_client_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_dial_v1(p_token text, p_number text, p_client_id bigint) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_pull(p_token text, p_stream text, p_after bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_pull(p_token text, p_stream text, p_after bigint, p_limit integer) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_pull_v1(p_token text, p_stream text, p_after bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_pull_v1(p_token text, p_stream text, p_after bigint, p_limit integer) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_recording_v1(p_token text, p_call_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_recording_v1(p_token text, p_call_id bigint) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_recording_v2(p_token text, p_call_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_recording_v2(p_token text, p_call_id bigint) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_route_v1(p_token text, p_caller text, p_dialled text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_route_v1(p_token text, p_caller text, p_dialled text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_set_presence_v1(p_token text, p_state text, p_until timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_set_presence_v1(p_token text, p_state text, p_until timestamp with time zone) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_tokens_v1() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.gateway_wallboard(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_wallboard(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_wallboard_v1(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_wallboard_v1(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_whoami(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_whoami(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.gateway_whoami_v1(p_token text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.gateway_whoami_v1(p_token text) TO cti_gateway;

REVOKE ALL ON FUNCTION cti.identify_client(p_call cti.call, p_register boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ignored_event(p_event text, p_no_fact text[], p_handled text[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.ingest_frames_v1(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.ingest_frames_v1(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) TO cti_ingester;

REVOKE ALL ON FUNCTION cti.is_extension(p_normalized text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.is_extension(p_normalized text) TO cti_reader;

REVOKE ALL ON FUNCTION cti.issue_gateway_token_v1(p_login name, p_valid interval) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.issue_gateway_token_v1(p_login name, p_valid interval) TO cti_client;

REVOKE ALL ON FUNCTION cti.issue_router_token_v1(p_valid interval) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.issue_supervisor_token_v1(p_valid interval) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.issue_wallboard_token_v1(p_valid interval) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.json_error(p_body text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.json_error_by_cast(p_body text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.live_token(p_token text, p_scope text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.lock_calls(p_calls bigint[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.manager_summary_v1(p_first date, p_last date) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.manager_summary_v1(p_first date, p_last date) TO cti_reader;

REVOKE ALL ON FUNCTION cti.may_hear(p_binding cti.client_login, p_supervisor boolean, p_call cti.call, OUT allowed boolean, OUT why text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.may_log_in(p_login name, p_login_oid oid) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.merge_calls(p_keep bigint, p_gone bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.my_binding() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.new_token(p_scope text, p_login name, p_valid interval, p_max_valid interval) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.normalize_phone(p_raw text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.normalize_phone(p_raw text) TO cti_client;
GRANT ALL ON FUNCTION cti.normalize_phone(p_raw text) TO cti_reader;

REVOKE ALL ON FUNCTION cti.normalize_phone_v1(p_raw text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.normalize_phone_v1(p_raw text) TO cti_client;

REVOKE ALL ON FUNCTION cti.onlinepbx_leg_fact(p_event text, p_data jsonb, p_received timestamp with time zone, p_answered_field text, p_ended_field text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.onlinepbx_presence_event(p_frame jsonb) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.pair_bridge_legs(p_source text, p_bridges text[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.parse_frames(p_sources text[], p_received timestamp with time zone[], p_bodies text[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.pbx_time(p_value jsonb, p_default timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.period_summary_v1(p_first date, p_last date) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.period_summary_v1(p_first date, p_last date) TO cti_reader;

REVOKE ALL ON FUNCTION cti.phone_directory_rows(p_source cti.phone_source, p_row jsonb) FROM PUBLIC;

GRANT SELECT ON TABLE cti.config TO cti_client;
GRANT SELECT ON TABLE cti.config TO cti_reader;

REVOKE ALL ON FUNCTION cti.phone_from_digits(p_digits text, p_cfg cti.config) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.phone_from_digits(p_digits text, p_cfg cti.config) TO cti_client;

REVOKE ALL ON FUNCTION cti.phone_numbers(p_raw text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.phone_numbers(p_raw text) TO cti_client;

REVOKE ALL ON FUNCTION cti.phone_numbers_v1(p_raw text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.phone_numbers_v1(p_raw text) TO cti_client;

REVOKE ALL ON FUNCTION cti.phone_source_drop_trigger_sql(p_source cti.phone_source) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.phone_source_trigger_sql(p_source cti.phone_source) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.phone_trigger_name(p_phone_column name, p_event text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_from_ami(p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_from_onlinepbx(p_frame jsonb, p_at timestamp with time zone, OUT status text, OUT detail text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_now() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_since(p cti.presence) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_state(p cti.presence) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.presence_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION cti.presence_v1() TO cti_client;

GRANT INSERT(source) ON TABLE cti.raw_event TO cti_ingester;

GRANT INSERT(received_at) ON TABLE cti.raw_event TO cti_ingester;

GRANT INSERT(body) ON TABLE cti.raw_event TO cti_ingester;

REVOKE ALL ON FUNCTION cti.process_and_record(p_event cti.raw_event, p_live boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.process_event(p_event cti.raw_event, p_live boolean, OUT status text, OUT detail text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.process_frame_by_frame(p_events cti.raw_event[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.process_in_rounds(p_events cti.raw_event[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.process_lone_frame(p_event cti.raw_event) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.process_round(p_facts cti.frame_fact[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.prune_outbox(p_now timestamp with time zone, p_per_stream integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.prune_recordings(p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.pull(p_kind text, p_id bigint, p_after bigint, p_limit integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.pull_commands_v1(p_after bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.pull_commands_v1(p_after bigint, p_limit integer) TO cti_client;

REVOKE ALL ON FUNCTION cti.pull_notifications_v1(p_after bigint, p_limit integer) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.pull_notifications_v1(p_after bigint, p_limit integer) TO cti_client;

REVOKE ALL ON FUNCTION cti.q850_cause(p_code text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.queue_fact_from_ami(p_source text, p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

GRANT SELECT ON TABLE cti.queue_call TO cti_reader;

GRANT SELECT ON TABLE cti.queue_setting TO cti_reader;

REVOKE ALL ON FUNCTION cti.queue_stats_between(p_from timestamp with time zone, p_until timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.queue_stats_between(p_from timestamp with time zone, p_until timestamp with time zone) TO cti_reader;

REVOKE ALL ON FUNCTION cti.rebuild() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.record_bridge_stay(p_source text, p_fact cti.fact, p_seq bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.recording_from_ami(p_source text, p_frame jsonb, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.refresh_phone_directory(p_source_id integer) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.required_field(p_data jsonb, p_field text, p_event text, p_path text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.required_object(p_data jsonb, p_event text, p_path text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.revoke_gateway_token_v1(p_token_id bigint) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.revoke_gateway_tokens_v1(p_login name) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.rotate_channel_key() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.route_v1(p_caller text, p_dialled text) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.route_v1(p_caller text, p_dialled text) TO cti_router;

REVOKE ALL ON FUNCTION cti.send_commands(p_commands cti.keyed_command[]) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.set_desk_presence(p_binding cti.client_login, p_state text, p_until timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.set_presence_v1(p_state text, p_until timestamp with time zone) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.set_presence_v1(p_state text, p_until timestamp with time zone) TO cti_client;

REVOKE ALL ON FUNCTION cti.settle_dial_request(p_id uuid, p_state text, p_reason text, p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.settle_dial_requests(p_at timestamp with time zone) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.streams_of(p_binding cti.client_login) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.task_day(p_task cti.callback_task) FROM PUBLIC;
GRANT ALL ON FUNCTION cti.task_day(p_task cti.callback_task) TO cti_reader;

REVOKE ALL ON FUNCTION cti.tg_client_login__revoke_tokens() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.tg_config__refresh_phone_directory() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.tg_phone_source__sync() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.tg_raw_event__parse() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.tg_raw_event__process() FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.token_binding(p_token text) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.track_callbacks(p_steps cti.call_derivation[], p_keys bigint[], p_live boolean) FROM PUBLIC;

REVOKE ALL ON FUNCTION cti.whoami_v1() FROM PUBLIC;
GRANT ALL ON FUNCTION cti.whoami_v1() TO cti_client;

GRANT SELECT ON TABLE cti.call_history_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.client_contact_summary_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.daily_call_stats_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.employee_call_stats_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.manager_answer_share_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.queue_agent_stats_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.queue_stats_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.route_decisions_v1 TO cti_reader;

GRANT SELECT ON TABLE cti.sales_funnel_v1 TO cti_reader;
