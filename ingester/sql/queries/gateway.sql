-- `pgcti gateway`: its database API, by token.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: gateway_whoami
SELECT login, stream, target_id, channel, last_seq, acked_seq FROM cti.gateway_whoami_v1(%s);

-- name: gateway_pull
SELECT seq, type, call_id, payload, created_at FROM cti.gateway_pull_v1(%s, %s, %s, 100);

-- name: gateway_ack
SELECT cti.gateway_ack_v1(%s, %s, %s);

-- name: gateway_contacts
SELECT call_id, started_at, direction, outcome, answered_by, extract(epoch FROM duration)::int
  FROM cti.gateway_contacts_v1(%s, %s);

-- name: gateway_wallboard
SELECT cti.gateway_wallboard_v1(%s);

-- name: gateway_dial
-- Click-to-call from the desk page: the token's desk places a call (db/logic/54_dialing.sql).
SELECT cti.gateway_dial_v1(%s, %s, %s);

-- name: gateway_dial_requests
SELECT request_id, number, client_id, state, reason, requested_at, call_id, call_outcome
  FROM cti.gateway_dial_requests_v1(%s);

-- name: gateway_set_presence
SELECT cti.gateway_set_presence_v1(%s, %s, %s::timestamptz);

-- name: gateway_route
-- A PBX asks which extension to ring first (db/logic/58_routing.sql), with a router token.
SELECT extension, reason FROM cti.gateway_route_v1(%s, %s, %s);

-- name: gateway_recording
-- May this token hear this call's recording? The PBX's file name when it may; logged.
SELECT source, file, allowed, why FROM cti.gateway_recording_v2(%s, %s);

-- name: gateway_desk
SELECT name, extension, presence FROM cti.gateway_desk_v1(%s);
