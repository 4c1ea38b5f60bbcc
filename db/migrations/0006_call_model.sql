-- Calls and what is known of their legs and bridges; the call row is derived from the legs.
-- depends: 0005_crm_adapters

SET LOCAL ROLE cti_owner;

-- One row per PBX call. Everything below `source, pbx_call_id` is derived by
-- cti.refresh_call() from the legs and bridges, so it is the same whatever order the frames came in.
CREATE TABLE cti.call (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    pbx_call_id text NOT NULL,
    direction text CHECK (direction IN ('inbound', 'outbound', 'internal')),
    external_number text,          -- the customer's number, E.164 (caller inbound, callee outbound)
    external_number_raw text,      -- as the PBX sent it
    dialled text,                  -- the line the customer dialled (inbound)
    client_id bigint,              -- CRM client, NULL when ambiguous or not looked up yet
    client_match text CHECK (client_match IN ('exact', 'ambiguous', 'new', 'none')),
    client_candidates bigint[],    -- every matching client when ambiguous
    client_card jsonb,             -- the client as the CRM knew them at ring time (one lookup per call)
    started_at timestamptz,
    answered_at timestamptz,
    answered_by text,              -- the extension that answered first
    holder_extension text,         -- the extension talking to the customer now (or last)
    ended_at timestamptz,
    outcome text CHECK (outcome IN ('answered', 'missed', 'busy', 'abandoned', 'no_answer')),
    hangup_cause text,
    hold_count int NOT NULL DEFAULT 0,
    last_event_at timestamptz,     -- when a frame of this call last arrived
    pbx_ended boolean NOT NULL DEFAULT false,  -- the PBX said the whole call ended
    ring_notified boolean NOT NULL DEFAULT false,
    card_workstation_id bigint,    -- where the card is open now (NULL: nowhere)
    routing_note text,             -- why a card could not be shown (no workstation for extension ...)
    UNIQUE (source, pbx_call_id)
);
COMMENT ON TABLE cti.call IS 'One row per PBX call: caller, client, times, who answered, outcome, where the card is open';
CREATE INDEX call_client ON cti.call (client_id, started_at);
CREATE INDEX call_started ON cti.call (started_at);
CREATE INDEX call_open ON cti.call (last_event_at) WHERE ended_at IS NULL;

-- One row per PBX channel (leg). Filled in by whichever frames arrive, in any order.
CREATE TABLE cti.call_leg (
    source text NOT NULL,
    leg_uuid text NOT NULL,
    call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    caller text,                  -- normalised (E.164 or extension)
    caller_raw text,
    destination text,             -- normalised
    destination_raw text,
    created_at timestamptz,
    answered_at timestamptz,
    ended_at timestamptz,
    hangup_cause text,
    on_hold boolean NOT NULL DEFAULT false,
    PRIMARY KEY (source, leg_uuid)
);
CREATE INDEX call_leg_call ON cti.call_leg (call_id);

-- Two legs joined into one conversation; the newest bridge of the customer's leg
-- with an extension's leg says who holds the call (how transfers are seen).
CREATE TABLE cti.call_bridge (
    call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    leg_a text NOT NULL,
    leg_b text NOT NULL,
    bridged_at timestamptz NOT NULL,
    PRIMARY KEY (call_id, leg_a, leg_b)
);

-- The chain of holders after the first answer: 101 -> 102 -> 103.
CREATE TABLE cti.call_transfer (
    call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    step int NOT NULL,
    from_extension text NOT NULL,
    to_extension text NOT NULL,
    transferred_at timestamptz NOT NULL,
    PRIMARY KEY (call_id, step)
);
