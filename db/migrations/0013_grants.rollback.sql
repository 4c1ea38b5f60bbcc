-- Undo 0013.
REVOKE SELECT ON cti.config FROM cti_client;
REVOKE EXECUTE ON FUNCTION cti.whoami_v1(), cti.pull_commands_v1(bigint, int), cti.ack_commands_v1(bigint),
    cti.pull_notifications_v1(bigint, int), cti.ack_notifications_v1(bigint),
    cti.normalize_phone(text) FROM cti_client;
REVOKE INSERT (source, received_at, body) ON cti.raw_event FROM cti_ingester;
