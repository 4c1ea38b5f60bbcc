-- Queue facts per call, a call centre's figures, and references to call recordings.
-- depends: 0023_presence_and_routing

-- Why: AMI's queue events (QueueCallerJoin/Leave/Abandon, AgentCalled/Connect/Complete/
-- RingNoAnswer) and recordings (VarSet MIXMONITOR_FILENAME) were stored and ignored. Queue
-- facts feed the supervisor's views (db/logic/53_queue_facts.sql, 86_queue_analytics.sql);
-- a recording is a reference to the PBX's file, played through the gateway with every play
-- logged (db/logic/59_recordings.sql).

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.queue_call (
    source text NOT NULL,
    caller_leg text NOT NULL,            -- the caller's channel (AMI Uniqueid)
    queue text NOT NULL,
    call_key text,                       -- the PBX's call (AMI Linkedid)
    joined_at timestamptz,
    join_position int,
    connected_at timestamptz,
    agent text,                          -- the extension that answered
    agent_interface text,
    completed_at timestamptz,
    talk_seconds int,
    ended_by text,                       -- AgentComplete's Reason: caller, agent, transfer
    abandoned_at timestamptz,
    abandon_position int,
    abandon_wait_seconds int,
    left_at timestamptz,
    exit_status text,                    -- QUEUESTATUS: TIMEOUT, FULL, JOINEMPTY, LEAVEEMPTY, ...
    PRIMARY KEY (source, caller_leg, queue)
);
COMMENT ON TABLE cti.queue_call IS 'A caller''s stay in a queue: joined (position), answered by whom and when, talk time, who ended it, abandoned (position, wait), left how';
CREATE INDEX queue_call_joined ON cti.queue_call (joined_at);

CREATE TABLE cti.queue_attempt (
    source text NOT NULL,
    agent_leg text NOT NULL,             -- the member's channel (AMI DestUniqueid)
    caller_leg text NOT NULL,
    queue text NOT NULL,
    agent text,
    agent_interface text,
    called_at timestamptz,
    ring_seconds numeric,
    result text CHECK (result IN ('answered', 'no_answer')),
    PRIMARY KEY (source, agent_leg)
);
COMMENT ON TABLE cti.queue_attempt IS 'Each queue member rung for a caller: when, for how long, answered or rang out';
CREATE INDEX queue_attempt_called ON cti.queue_attempt (called_at);

CREATE TABLE cti.queue_pause (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    agent text NOT NULL,                 -- the member's extension
    paused_at timestamptz NOT NULL,
    resumed_at timestamptz,
    reason text
);
COMMENT ON TABLE cti.queue_pause IS 'Each pause of a queue member (QueueMemberPause), with its reason, until it resumed';
CREATE INDEX queue_pause_open ON cti.queue_pause (queue, agent) WHERE resumed_at IS NULL;

CREATE TABLE cti.queue_setting (
    queue text PRIMARY KEY,
    service_level_seconds int NOT NULL DEFAULT 20 CHECK (service_level_seconds > 0),
    short_abandon_seconds int NOT NULL DEFAULT 5 CHECK (short_abandon_seconds >= 0)
);
COMMENT ON TABLE cti.queue_setting IS 'Per queue: the service level target (answered within T seconds) and abandons short enough to leave out (under N seconds); queues without a row take 20 and 5';

CREATE TABLE cti.recording (
    source text NOT NULL,
    call_key text NOT NULL,              -- the PBX's call (AMI Linkedid; onlinePBX uuid)
    file text NOT NULL,                  -- the PBX's file name, or its record id
    channel_leg text,                    -- the channel that records (AMI Uniqueid)
    started_at timestamptz,
    ready_at timestamptz,                -- complete: StopMixMonitor, or the channel hung up
    PRIMARY KEY (source, call_key, file)
);
CREATE INDEX recording_channel ON cti.recording (source, channel_leg) WHERE ready_at IS NULL;
COMMENT ON TABLE cti.recording IS 'A reference to each call recording (never a signed URL): the file or record id, and when it was complete';

CREATE TABLE cti.recording_play (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    played_at timestamptz NOT NULL DEFAULT now(),
    login name,                          -- the desk that listened (NULL: a supervisor token)
    token_id bigint,
    call_id bigint NOT NULL,
    file text NOT NULL,
    allowed boolean NOT NULL,
    why text NOT NULL
);
COMMENT ON TABLE cti.recording_play IS 'Every request to play a recording, allowed or not, who and when (recordings are personal data)';

ALTER TABLE cti.config ADD COLUMN recordings_keep interval NOT NULL DEFAULT '365 days'
    CHECK (recordings_keep > '0'::interval);
COMMENT ON COLUMN cti.config.recordings_keep IS 'References to recordings older than this are deleted (the PBX deletes its files by its own rule); plays are refused past it';

ALTER TABLE cti.gateway_token DROP CONSTRAINT gateway_token_scope_check;
ALTER TABLE cti.gateway_token ADD CONSTRAINT gateway_token_scope_check
    CHECK (scope IN ('desk', 'wallboard', 'router', 'supervisor'));
