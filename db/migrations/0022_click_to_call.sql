-- Click-to-call: a desk asks the PBX to dial a client, and the edge does it at most once.
-- depends: 0021_rejected_and_withheld

-- Why: pgcti only listened. A manager dials from the CRM card; the request is a row (so
-- nothing is lost and every state is visible), the edge that holds the PBX link takes it
-- with a committed claim before it sends anything (so two edges never both send it), and
-- the outcome comes back through the raw log like every other PBX fact
-- (db/logic/54_dialing.sql; docs/crm-clients.md#click-to-call).

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'cti_dialer') THEN
        -- Group role of edges that place calls: it may claim dial requests, nothing else.
        -- An ingester login is made a member only where click-to-call is used.
        CREATE ROLE cti_dialer NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA cti TO cti_dialer;

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.dial_request (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- also the AMI ChannelId of the call it places
    login name NOT NULL,                 -- the desk login that asked (cti.client_login)
    workstation_id bigint NOT NULL,
    extension text NOT NULL,             -- the desk's own extension, rung first
    number text NOT NULL,                -- normalised: E.164, or an internal extension
    client_id bigint,                    -- the CRM card it was dialled from, if any
    state text NOT NULL DEFAULT 'requested'
        CHECK (state IN ('requested', 'sent', 'answered', 'failed', 'expired', 'unknown')),
    reason text,                         -- why failed, expired or unknown
    requested_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,     -- not taken by then: expired, never dialled later
    sent_at timestamptz,                 -- claimed by an edge, committed before it sends
    sent_by text,                        -- which edge (host and process)
    decided_at timestamptz               -- when the state became final
);
COMMENT ON TABLE cti.dial_request IS 'Click-to-call requests from desks: requested, sent (claimed by one edge, at most once), then answered, failed, expired or unknown';
CREATE INDEX dial_request_waiting ON cti.dial_request (requested_at) WHERE state = 'requested';
CREATE INDEX dial_request_sent ON cti.dial_request (sent_at) WHERE state = 'sent';
CREATE INDEX dial_request_of_login ON cti.dial_request (login, requested_at);
-- onlinePBX does not say which call a request placed: it is found by number and time.
CREATE INDEX dial_request_by_number ON cti.dial_request (number, sent_at);

ALTER TABLE cti.config
    ADD COLUMN dial_expire_after interval NOT NULL DEFAULT '30 seconds'
        CHECK (dial_expire_after > '0'::interval),
    ADD COLUMN dial_unknown_after interval NOT NULL DEFAULT '2 minutes'
        CHECK (dial_unknown_after > '0'::interval),
    ADD COLUMN dial_requests_per_minute int NOT NULL DEFAULT 6
        CHECK (dial_requests_per_minute > 0);
COMMENT ON COLUMN cti.config.dial_expire_after IS 'A dial request no edge took within this is expired: nobody is called minutes later';
COMMENT ON COLUMN cti.config.dial_unknown_after IS 'A request sent with no outcome from the PBX within this is marked unknown (never dialled again)';
COMMENT ON COLUMN cti.config.dial_requests_per_minute IS 'Dial requests one desk may make per minute';
