-- Undo 0007 (drops undelivered commands).
DROP FUNCTION cti.ack_notifications_v1(bigint);
DROP FUNCTION cti.pull_notifications_v1(bigint, int);
DROP FUNCTION cti.ack_commands_v1(bigint);
DROP FUNCTION cti.pull_commands_v1(bigint, int);
DROP FUNCTION cti.ack(text, bigint, bigint);
DROP FUNCTION cti.pull(text, bigint, bigint, int);
DROP FUNCTION cti.whoami_v1();
DROP FUNCTION cti.my_binding();
DROP FUNCTION cti.enqueue(text, bigint, text, bigint, jsonb);
DROP FUNCTION cti.channel_name(text, bigint);
DROP TABLE cti.client_login, cti.outbox, cti.stream;
