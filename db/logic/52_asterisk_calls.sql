-- Asterisk AMI facts into calls: which call a fact belongs to, and who talked to whom.
--
-- Rules:
-- - A leg stays in the call it started in: a channel's Linkedid can change when a transfer
--   joins it to another call, so a fact about a known leg goes to that leg's call; a new
--   leg goes to the call of its Linkedid (made when new).
-- - AMI says only "channel X entered (left) bridge B". Each stay is kept
--   (cti.ami_bridge_member); two legs talked when their stays in one bridge overlapped, or
--   when each overlapped a stay of the same Local/ wire (';1' in one bridge, ';2' in the
--   other: Local/ channels that are not optimised away, as FreePBX queues use them).
-- - Two legs of different calls that talked make one call: the later call is merged into
--   the earlier (an attended transfer joins the colleague's consultation to the customer's
--   call), as onlinePBX 2.0 bridges do.
-- - A leg created after its bridge stays were seen is paired then.
-- - A leg rung by a customer's trunk leg is rung by that customer, even when the trunk's
--   channel name alone did not say it was a trunk (a rule by context only matches the
--   channel's Newchannel). A leg rung through a Local/ wire in a call without a customer's
--   leg is rung by our own side (click-to-call through AMI Originate, a colleague): a
--   number dialled so is dialled by the extension that answered, else by the extension
--   whose device started the call, never by the caller id the dialplan gave the wire.
-- Why: the call logic (55_derive_calls.sql) reads who talked from cti.call_bridge pairs,
-- the same for every PBX.

-- Apply one AMI fact (p_seq: its raw event's id, the stream's order); returns the calls to derive.
CREATE OR REPLACE FUNCTION cti.apply_asterisk_fact(p_source text, p_fact cti.fact, p_seq bigint) RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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

-- Who rings a leg (a DialBegin's), where the block alone cannot say (see the header):
-- rung by a customer's trunk leg, it is rung by that customer; rung through a Local/ wire
-- in a call that has no customer's leg, by our own side: a phone rung so rings for no
-- customer (an Originate: click-to-call, a colleague), and a trunk dialled so is dialled
-- by the extension that answered in the call.
CREATE OR REPLACE FUNCTION cti.ami_who_rings(p_source text, p_fact cti.fact) RETURNS cti.fact
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
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

-- Keep a stay in a bridge (the first enter and the first leave count: a repeated event
-- changes nothing), then pair the legs of that bridge.
CREATE OR REPLACE FUNCTION cti.record_bridge_stay(p_source text, p_fact cti.fact, p_seq bigint) RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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

-- Pair the legs that talked in these bridges (or through a Local/ wire from one of them),
-- store each pair as a bridge of its call, merging calls a pair joins. Returns the calls.
CREATE OR REPLACE FUNCTION cti.pair_bridge_legs(p_source text, p_bridges text[]) RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
