-- What `pgcti watch`, the reference CRM client, runs: the client API v1.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: listen
LISTEN {};

-- name: whoami
-- A CRM client's streams and the channels to LISTEN on (raises for a login that is not one).
SELECT stream, channel FROM cti.whoami_v1() ORDER BY stream;

-- name: pull_commands
SELECT seq, type, call_id, payload, created_at FROM cti.pull_commands_v1();

-- name: pull_notifications
SELECT seq, type, call_id, payload, created_at FROM cti.pull_notifications_v1();

-- name: ack_commands
SELECT cti.ack_commands_v1(%s);

-- name: ack_notifications
SELECT cti.ack_notifications_v1(%s);

-- name: login_bound_to
-- `pgcti watch` run by a DBA: the client login bound to a workstation (by id, or by the
-- extension of its phone, through the CRM adapter) or to an employee.
SELECT cl.login FROM cti.client_login cl
 WHERE (%(ws)s::bigint IS NULL OR cl.workstation_id = %(ws)s::bigint)
   AND (%(ext)s::text IS NULL OR cl.workstation_id = cti.crm_workstation_for_extension(%(ext)s::text))
   AND (%(emp)s::bigint IS NULL OR cl.employee_id = %(emp)s::bigint)
 ORDER BY cl.login LIMIT 1;

-- name: dial
-- Click-to-call: the desk places a call from its own extension (refused with a clear error
-- for a login without a desk, a number that does not parse, too many requests).
SELECT cti.dial_v1(%s);

-- name: dial_state
SELECT state, reason, call_id, call_outcome FROM cti.dial_requests_v1() WHERE request_id = %s;
