-- Every privilege pgcti grants, in one place (PUBLIC has nothing: see 0001).
-- depends: 0012_history_views

SET LOCAL ROLE cti_owner;

-- The ingester: insert raw frames (three columns) and nothing else. No SELECT, so no
-- RETURNING; ON CONFLICT DO NOTHING needs only INSERT.
GRANT INSERT (source, received_at, body) ON cti.raw_event TO cti_ingester;

-- CRM clients: the versioned API (each function finds the caller's own workstation by login).
GRANT EXECUTE ON FUNCTION cti.whoami_v1(), cti.pull_commands_v1(bigint, int), cti.ack_commands_v1(bigint),
    cti.pull_notifications_v1(bigint, int), cti.ack_notifications_v1(bigint),
    cti.normalize_phone(text) TO cti_client;
-- normalize_phone() reads the phone rules as its caller; they are not secret.
GRANT SELECT ON cti.config TO cti_client;
