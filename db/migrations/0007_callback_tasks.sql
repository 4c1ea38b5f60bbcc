-- Callback tasks: a missed call from a client becomes someone's job to call back.
-- depends: 0006_phone_directory

-- The rules are in db/logic/57_callbacks.sql; here are the table and its settings.

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.config
    -- How long the owner has to call back, from the end of the missed call.
    ADD COLUMN callback_due_after interval NOT NULL DEFAULT '1 hour' CHECK (callback_due_after >= interval '0'),
    -- Who owns a task, tried in order: the client's manager, the line's owner
    -- (cti.crm_line_owner), cti.config.callback_default_owner.
    ADD COLUMN callback_owner_policy text[] NOT NULL DEFAULT ARRAY['manager', 'line', 'default']
        CHECK (callback_owner_policy <@ ARRAY['manager', 'line', 'default']),
    ADD COLUMN callback_default_owner bigint;  -- an employee id of the CRM; NULL: nobody

-- One open task per party (a client, or a number the CRM does not know). Derived from
-- calls, like everything else: rebuild makes them again.
CREATE TABLE cti.callback_task (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    party text NOT NULL,              -- 'client:<id>', or 'number:<E.164>' when there is no client
    client_id bigint,
    e164 text NOT NULL,               -- the number to call back: the last missed call's
    dialled text,                     -- the line the first missed call came in on
    first_call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    last_call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    missed_calls int NOT NULL DEFAULT 1 CHECK (missed_calls > 0),
    owner_id bigint,                  -- a CRM employee; NULL when the policy found nobody
    owner_rule text CHECK (owner_rule IN ('manager', 'line', 'default')),
    created_at timestamptz NOT NULL,  -- when the first missed call ended (the PBX's clock)
    due_at timestamptz NOT NULL,
    closed_at timestamptz,            -- when someone reached the party
    closed_by_call_id bigint REFERENCES cti.call (id) ON DELETE SET NULL,
    closed_by_extension text,
    closed_how text CHECK (closed_how IN ('outbound_answered', 'inbound_answered')),
    CHECK ((closed_at IS NULL) = (closed_how IS NULL))
);
COMMENT ON TABLE cti.callback_task IS 'Missed calls to call back: one open task per client (or unknown number), its owner, due time, and who closed it';
CREATE UNIQUE INDEX callback_task_open ON cti.callback_task (party) WHERE closed_at IS NULL;
CREATE INDEX callback_task_owner ON cti.callback_task (owner_id) WHERE closed_at IS NULL;
CREATE INDEX callback_task_created ON cti.callback_task (created_at);
CREATE INDEX callback_task_first_call ON cti.callback_task (first_call_id);
CREATE INDEX callback_task_last_call ON cti.callback_task (last_call_id);

-- The last raw event that missed or reached each party: a batch processed in rounds that
-- would touch a party out of frame order is processed again frame by frame.
CREATE TABLE cti.callback_party_key (
    party text PRIMARY KEY,
    last_frame_key bigint NOT NULL
);
COMMENT ON TABLE cti.callback_party_key IS 'The raw event that last missed or reached each party (keeps callback tasks in frame order)';

-- The owner is told in their notification stream.
ALTER TABLE cti.outbox DROP CONSTRAINT outbox_type_check,
    ADD CONSTRAINT outbox_type_check CHECK (type IN ('ring', 'open_card', 'close_card', 'call_ended', 'callback_task'));
