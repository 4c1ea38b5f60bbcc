-- Queue facts per call, from Asterisk's app_queue events.
--
-- Rules:
-- - A caller's stay in a queue is one row per caller channel and queue (cti.queue_call):
--   QueueCallerJoin (when, at what position), AgentConnect (who answered, when),
--   AgentComplete (talk time, who ended it: caller, agent, transfer), QueueCallerAbandon
--   (position and wait at the abandon), QueueCallerLeave (when it left the queue), and the
--   dialplan's QUEUESTATUS (VarSet: TIMEOUT, FULL, JOINEMPTY, LEAVEEMPTY, ...: how a caller
--   who was neither answered nor abandoned left).
-- - Each member rung is one row per member channel (cti.queue_attempt): AgentCalled, then
--   AgentRingNoAnswer (rang out, after RingTime) or AgentConnect (answered).
-- - A member is named by its extension: PJSIP/103 as a channel of it would be
--   (cti.crm_extension_for_channel), Local/103@from-queue by the number before the @.
-- - Times are the PBX's (Timestamp), else arrival. Events may come twice or out of order:
--   each only fills what it knows (first join, first connect), so replays change nothing.
-- - These events are call facts too (43_facts_asterisk.sql reads them for legs); the queue
--   rows are made beside, and a rebuild makes them again from the raw log.
-- Why rows per stay and per attempt: the supervisor's figures (86_queue_analytics.sql) are
-- counts and sums over them, per queue, hour and agent.

-- A queue member's extension from its Interface.
CREATE OR REPLACE FUNCTION cti.ami_member_extension(p_interface text) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_interface ~ '^Local/[0-9]+@' THEN substring(p_interface FROM '^Local/([0-9]+)@')
                WHEN p_interface ~ '^[A-Za-z0-9]+/[^/-]+$' THEN cti.crm_extension_for_channel(p_interface || '-00000000') END
$$;

-- Apply one AMI queue event; NULL for any other block.
CREATE OR REPLACE FUNCTION cti.queue_fact_from_ami(p_source text, p_frame jsonb, p_at timestamptz) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
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
