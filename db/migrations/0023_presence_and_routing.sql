-- Presence per extension, and routing from the CRM: the client's own manager first.
-- depends: 0022_click_to_call

-- Why: pgcti knows the caller's manager at the first ring. The PBX may ask which extension
-- to ring first (cti.route_v1, db/logic/58_routing.sql), and presence (db/logic/56_presence.sql)
-- says whether that manager can take the call. Every decision is kept, to be joined with
-- what happened (did the manager answer?).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_router') THEN
        -- Group role of the PBX's routing logins (func_odbc): cti.route_v1, nothing else.
        CREATE ROLE cti_router NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA cti TO cti_router;

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.presence (
    extension text PRIMARY KEY,
    device_state text,                   -- the PBX's word: NOT_INUSE, INUSE, BUSY, RINGING, ONHOLD, UNAVAILABLE, ...
    device_since timestamptz,
    paused boolean NOT NULL DEFAULT false,  -- paused in the PBX's queues (QueueMemberPause)
    paused_reason text,
    paused_since timestamptz,
    desk_state text CHECK (desk_state IN ('away', 'dnd')),  -- set by the person at the desk
    desk_until timestamptz,              -- NULL: until changed
    desk_since timestamptz,
    changed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cti.presence IS 'Each extension''s state: the PBX''s device state, a queue pause, and away / do not disturb set at the desk; changed only on real change';

CREATE TABLE cti.route_decision (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asked_at timestamptz NOT NULL DEFAULT now(),
    caller text,                         -- normalised; NULL when it did not parse or was withheld
    dialled text,
    client_id bigint,
    manager_id bigint,
    manager_extension text,
    extension text,                      -- rung first; NULL: the PBX goes on with its own dialplan
    reason text NOT NULL
);
COMMENT ON TABLE cti.route_decision IS 'Every routing answer pgcti gave the PBX, with its reason (joined later with what happened to the call)';
CREATE INDEX route_decision_caller ON cti.route_decision (caller, asked_at);
CREATE INDEX route_decision_asked ON cti.route_decision (asked_at);

ALTER TABLE cti.gateway_token DROP CONSTRAINT gateway_token_scope_check;
ALTER TABLE cti.gateway_token ADD CONSTRAINT gateway_token_scope_check
    CHECK (scope IN ('desk', 'wallboard', 'router'));
