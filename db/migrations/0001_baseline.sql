-- Baseline of pgcti 0.2: schemas, roles, tables, types and table grants (functions live in db/logic).
-- depends:

-- pgcti 0.1.0 shipped as migrations 0001-0018; this file is what they left behind, folded.
-- From here on, versioned migrations carry table and data changes only: every function,
-- trigger and view body lives once in db/logic/, applied by `pgcti migrate` after these.
-- A database migrated by 0.1.0 is adopted, not rebuilt: see db/upgrades/from_0.1.0.sql.

-- Roles are cluster-wide, so they are created only when missing: several databases
-- on one server (a CRM's staging and production, the test suite's clones) share them.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_owner') THEN
        -- Owns every pgcti object; SECURITY DEFINER code runs as this role, never as a superuser.
        CREATE ROLE cti_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_ingester') THEN
        -- Group role of ingester logins: may insert raw PBX events and nothing else.
        CREATE ROLE cti_ingester NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_client') THEN
        -- Group role of CRM client logins: may call the documented API functions only.
        CREATE ROLE cti_client NOLOGIN;
    END IF;
END
$$;

-- Later migrations run `SET LOCAL ROLE cti_owner` so that everything they create is owned by it.
GRANT cti_owner TO CURRENT_USER;

CREATE SCHEMA cti AUTHORIZATION cti_owner;
COMMENT ON SCHEMA cti IS 'pgcti: raw PBX events, calls, the command outbox and the client API';

-- pgcti creates no other schema in a CRM's database (its reference CRM, for the demo and the
-- tests, comes only with `pgcti migrate --with-reference-crm`: db/reference_crm).
REVOKE ALL ON SCHEMA cti FROM PUBLIC;
-- Functions are executable by PUBLIC by default; for pgcti nothing is, unless granted by name.
ALTER DEFAULT PRIVILEGES FOR ROLE cti_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA cti TO cti_ingester, cti_client;

-- Everything below is owned by cti_owner (SECURITY DEFINER code runs as it, never as a superuser).
SET LOCAL ROLE cti_owner;

-- One row. Phone rules belong in data, not in code: a DBA changes them with UPDATE,
-- then runs `pgcti rebuild` so that derived state follows.
CREATE TABLE cti.config (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    default_country_code text NOT NULL DEFAULT '7' CHECK (default_country_code ~ '^[1-9][0-9]{0,2}$'),
    trunk_prefix text NOT NULL DEFAULT '8' CHECK (trunk_prefix ~ '^[0-9]*$'),
    international_prefixes text[] NOT NULL DEFAULT ARRAY['810', '00'],
    national_digits int NOT NULL DEFAULT 10 CHECK (national_digits BETWEEN 4 AND 14),
    extension_max_digits int NOT NULL DEFAULT 5 CHECK (extension_max_digits BETWEEN 1 AND 8),
    max_frame_bytes int NOT NULL DEFAULT 1048576 CHECK (max_frame_bytes > 0),
    -- A call with no event for this long is ended by the ingester's housekeeping tick
    -- (its end never came: lost while the PBX connection was down). Its card is closed.
    stale_call_after interval NOT NULL DEFAULT '2 hours' CHECK (stale_call_after > interval '0')
);

COMMENT ON TABLE cti.config IS 'pgcti settings (one row): phone rules and the raw frame size limit; edit with UPDATE';
INSERT INTO cti.config DEFAULT VALUES;

-- True for what normalize_phone() returns for an internal extension. It lives here, not in
-- db/logic, because cti.call_leg stores its result in two generated columns: changing it is
-- a versioned migration that also recomputes them.
CREATE FUNCTION cti.is_extension(p_normalized text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p_normalized IS NOT NULL AND left(p_normalized, 1) <> '+' $$;

-- Append-only. The ingester writes (source, received_at, body); the BEFORE trigger
-- parses the body and computes the dedup key; outcomes go to cti.event_outcome.
CREATE TABLE cti.raw_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL CHECK (source ~ '^[a-z0-9_]{1,32}$'),
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    body text,                -- the frame as received; kept only when it could not be parsed
    frame jsonb,              -- the parsed frame
    dedup_key text NOT NULL,
    parse_error text
);

COMMENT ON TABLE cti.raw_event IS 'Every PBX frame as received (append-only); derived state is a function of this log';
CREATE UNIQUE INDEX raw_event_dedup ON cti.raw_event (source, dedup_key);

-- What processing made of each raw event; written by the processing trigger and by rebuild.
CREATE TABLE cti.event_outcome (
    raw_event_id bigint PRIMARY KEY REFERENCES cti.raw_event (id),
    status text NOT NULL CHECK (status IN ('processed', 'ignored', 'failed')),
    detail text,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

COMMENT ON TABLE cti.event_outcome IS 'Processing result beside each raw event: processed, ignored (with why) or failed (with the error)';
CREATE INDEX event_outcome_not_processed ON cti.event_outcome (status) WHERE status <> 'processed';

-- One row per PBX call. Everything below `source, pbx_call_id` is derived by
-- cti.derive_calls() from the legs and bridges, so it is the same whatever order the frames came in.
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
    -- Whether each end is one of our extensions, computed once when the leg is written
    -- instead of at every derivation.
    caller_is_extension boolean GENERATED ALWAYS AS (cti.is_extension(caller)) STORED,
    destination_is_extension boolean GENERATED ALWAYS AS (cti.is_extension(destination)) STORED,
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

-- Unknown numbers pgcti registered, one row per number: the unique key makes
-- registration happen once, and rebuild knows which call registered it.
CREATE TABLE cti.registered_number (
    e164 text PRIMARY KEY,
    client_id bigint NOT NULL,
    call_id bigint NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now()
);

-- A stream per target: a workstation ('ws', card commands) or an employee ('emp', ring
-- notifications). last_seq is taken under this row's lock, held to commit, so sequences
-- become visible in order and without holes: a client that saw N has seen everything up to N.
CREATE TABLE cti.stream (
    target_kind text NOT NULL CHECK (target_kind IN ('ws', 'emp')),
    target_id bigint NOT NULL,
    last_seq bigint NOT NULL DEFAULT 0,
    acked_seq bigint NOT NULL DEFAULT 0,
    acked_at timestamptz,
    PRIMARY KEY (target_kind, target_id)
);

CREATE TABLE cti.outbox (
    target_kind text NOT NULL,
    target_id bigint NOT NULL,
    seq bigint NOT NULL,
    type text NOT NULL CHECK (type IN ('ring', 'open_card', 'close_card', 'call_ended')),
    call_id bigint NOT NULL,
    payload jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (target_kind, target_id, seq),
    FOREIGN KEY (target_kind, target_id) REFERENCES cti.stream (target_kind, target_id)
);

COMMENT ON TABLE cti.outbox IS 'Every command and notification for CRM clients, per target in sequence order; clients pull and ack';

-- Which database login is which CRM client. Bound to the login itself (session_user,
-- which a client cannot change), never to a setting the client could set.
CREATE TABLE cti.client_login (
    login name PRIMARY KEY,
    workstation_id bigint,
    employee_id bigint,
    CHECK (workstation_id IS NOT NULL OR employee_id IS NOT NULL)
);

COMMENT ON TABLE cti.client_login IS 'CRM client logins (members of cti_client) and the workstation / employee each one is';

-- What a PBX frame says about a call, independent of the PBX: the contract between
-- per-PBX fact functions and the call logic. `kind` is one of leg_created, leg_answered,
-- bridged, leg_hold, leg_unhold, leg_ended, call_ended, ignored (with `note` saying why).
CREATE TYPE cti.fact AS (
    kind text,
    call_key text,
    leg text,
    other_leg text,
    at timestamptz,
    caller_raw text,
    destination_raw text,
    cause text,
    note text
);

-- A frame's fact, with the frame it came from and, once known, the call it belongs to.
CREATE TYPE cti.frame_fact AS (
    raw_event_id bigint,
    received_at timestamptz,
    fact cti.fact,
    call_id bigint,
    round int        -- 1 for a call's first frame in the batch, 2 for its second, ...
);

-- One command for a CRM client: what cti.enqueue_all() appends, in array order.
CREATE TYPE cti.command AS (
    target_kind text,
    target_id bigint,
    type text,
    call_id bigint,
    payload jsonb
);

-- A command with its place among the commands of a batch: the frame that caused it, then
-- the step within that frame's derivation (ring, close, open) and the recipient.
CREATE TYPE cti.keyed_command AS (
    frame_key bigint,
    step int,
    sub bigint,
    command cti.command
);

-- What deriving a set of calls produced: the commands to send (not yet sent), and the
-- frames at which a client was looked up, in the order it was done, and whether any
-- lookup registered an unknown number (registration is the one effect shared between calls).
CREATE TYPE cti.derivation_result AS (
    commands cti.keyed_command[],
    lookup_keys bigint[],
    registered boolean
);

-- One call's derivation: its state before and after, and what follows from the change.
CREATE TYPE cti.call_derivation AS (
    ord int,                  -- position in the derivation: commands are sent in this order
    before_state cti.call,
    after_state cti.call,
    chain text[],             -- who held the call, in order (first answer, then transfers)
    chain_at timestamptz[],
    transfers_differ boolean, -- cti.call_transfer must be rewritten from the chain
    ring_now boolean,         -- the recipients hear of this call now
    needs_client boolean      -- the customer's number is known and not looked up yet
);

-- Which db/logic files are in the database, by checksum, and the functions each one made:
-- `pgcti migrate` re-applies a file only when it changed, and knows what a file dropped.
CREATE TABLE cti.logic_file (
    name text PRIMARY KEY, checksum text NOT NULL, functions text[] NOT NULL, applied_at timestamptz NOT NULL
);
COMMENT ON TABLE cti.logic_file IS 'Bookkeeping of pgcti migrate: the db/logic files applied, their checksums and functions';

-- Every table privilege pgcti grants (function grants: db/logic/90_grants.sql). PUBLIC has none.
-- The ingester: insert raw frames (three columns) and nothing else. No SELECT, so no
-- RETURNING; ON CONFLICT DO NOTHING needs only INSERT.
GRANT INSERT (source, received_at, body) ON cti.raw_event TO cti_ingester;
-- normalize_phone() reads the phone rules as its caller; they are not secret.
GRANT SELECT ON cti.config TO cti_client;
