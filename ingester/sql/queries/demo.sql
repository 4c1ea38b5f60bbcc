-- `pgcti demo`: its CRM, logins and tokens, a month of history, and what its board shows.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: demo_targets
-- The demo observes every doorbell as a DBA may: each stream's LISTEN channel, named by
-- the database (cti.channel_name), for the workstations and every employee (rings go to
-- the recipients, callback tasks to whoever owns them); last, whether one gets rings.
SELECT 'ws' AS kind, id, name, cti.channel_name('ws', id), false FROM pgcti_refcrm.workstation
UNION ALL
SELECT 'emp', e.id, e.surname, cti.channel_name('emp', e.id),
       e.id IN (SELECT r FROM cti.crm_ring_recipients(NULL) r)
  FROM pgcti_refcrm.employee e;

-- name: demo_high_water
-- Where the raw log and the calls stood before this run, so the summary counts this run only.
SELECT (SELECT coalesce(max(id), 0) FROM cti.raw_event), (SELECT coalesce(max(id), 0) FROM cti.call);

-- name: demo_after_history
-- What a DBA does after a bulk load: vacuum and analyze now, so that autovacuum does not
-- wake up on the month of history in the middle of the live calls (it did: doorbells
-- waited up to half a second while it ran and every session planned again).
VACUUM (ANALYZE);

-- name: demo_history_handled
-- The month's cards and rings were handled back then: each stream is acknowledged up to its
-- last item, as its client would have, so that a client started now does not catch up on
-- a month of past pops.
INSERT INTO cti.stream_ack AS a (target_kind, target_id, acked_seq, acked_at)
SELECT target_kind, target_id, last_seq, now() FROM cti.stream
    ON CONFLICT (target_kind, target_id) DO UPDATE SET acked_seq = greatest(a.acked_seq, EXCLUDED.acked_seq),
                                                       acked_at = EXCLUDED.acked_at;

-- name: demo_client_count
SELECT count(*) FROM pgcti_refcrm.client;

-- name: demo_call_keys
-- A call's ids as the PBX knows them: its call id and (2.0 has no call id) its legs.
SELECT c.pbx_call_id, array_agg(l.leg_uuid) FROM cti.call c
  LEFT JOIN cti.call_leg l ON l.call_id = c.id WHERE c.id = %s GROUP BY c.id;

-- name: demo_item
SELECT payload FROM cti.outbox WHERE target_kind = %s AND target_id = %s AND seq = %s;

-- name: demo_live_calls
SELECT id, direction, external_number, client_card ->> 'client_name', answered_by,
       holder_extension, routing_note
  FROM cti.call WHERE ended_at IS NULL AND started_at > now() - interval '10 minutes'
 ORDER BY id DESC;

-- name: demo_still_under_way
-- Callbacks on their way to the PBX, and calls of this run not ended yet.
SELECT (SELECT count(*) FROM cti.dial_request WHERE state IN ('requested', 'sent'))
     + (SELECT count(*) FROM cti.call WHERE id > %s AND ended_at IS NULL);

-- name: demo_frames_since
-- PBX frames stored since the run began (not housekeeping ticks), and what became of them.
SELECT count(*), count(*) FILTER (WHERE o.status = 'failed'),
       count(*) FILTER (WHERE o.status = 'ignored')
  FROM cti.raw_event r LEFT JOIN cti.event_outcome o ON o.raw_event_id = r.id
 WHERE r.id > %s AND r.source <> 'pgcti';

-- name: demo_outcomes_since
SELECT coalesce(outcome, 'in progress'), count(*) FROM cti.call
 WHERE id > %s GROUP BY 1 ORDER BY 2 DESC;

-- name: seed_has_employees
SELECT count(*) FROM pgcti_refcrm.employee;

-- name: seed_employee
INSERT INTO pgcti_refcrm.employee (surname, name, extension, receives_call_notifications)
VALUES (%s, %s, %s, %s) RETURNING id;

-- name: seed_workstation
INSERT INTO pgcti_refcrm.workstation (name, extension) VALUES (%s, %s);

-- name: seed_company
INSERT INTO pgcti_refcrm.company (name) VALUES (%s) RETURNING id;

-- name: seed_client
INSERT INTO pgcti_refcrm.client (name, company_id, manager_id) VALUES (%s, %s, %s) RETURNING id;

-- name: seed_client_phone
INSERT INTO pgcti_refcrm.client_phone (client_id, raw) VALUES (%s, %s);

-- name: seed_line
-- The number customers call, and who calls back a missed caller no manager has (a lead):
-- the first employee.
INSERT INTO pgcti_refcrm.line (dialled, name, owner_id)
SELECT %s, %s, min(id) FROM pgcti_refcrm.employee
    ON CONFLICT (dialled) DO NOTHING;

-- name: seed_workstation_ids
SELECT id FROM pgcti_refcrm.workstation ORDER BY id;

-- name: bind_workstation_login
-- A desk's login, bound to its workstation and to the employee at it (the reference CRM:
-- the same extension), so that the desk page shows rings and callback tasks too.
INSERT INTO cti.client_login (login, workstation_id, employee_id)
SELECT %(login)s, w.id, (SELECT e.id FROM pgcti_refcrm.employee e WHERE e.extension = w.extension ORDER BY e.id LIMIT 1)
  FROM pgcti_refcrm.workstation w WHERE w.id = %(ws)s
ON CONFLICT (login) DO UPDATE SET employee_id = EXCLUDED.employee_id
 WHERE cti.client_login.employee_id IS NULL;

-- name: register_ingester_login
INSERT INTO cti.ingester_login (login) VALUES (%s) ON CONFLICT DO NOTHING;

-- name: role_exists
SELECT 1 FROM pg_roles WHERE rolname = %s;

-- name: create_login_in_role
CREATE ROLE {} LOGIN IN ROLE {};

-- name: history_first_calls
-- The demo's callers with a client, each with their manager and first call.
SELECT c.client_id, cl.manager_id, min(c.started_at)
  FROM cti.call c JOIN pgcti_refcrm.client cl ON cl.id = c.client_id
 WHERE c.direction = 'inbound' AND c.started_at IS NOT NULL
 GROUP BY c.client_id, cl.manager_id
 ORDER BY c.client_id;

-- name: history_deal
INSERT INTO pgcti_refcrm.deal (client_id, manager_id, stage, opened_at, closed_at)
VALUES (%s, %s, CASE WHEN %s::timestamptz IS NULL THEN 'open' ELSE 'won' END, %s, %s);

-- name: issue_desk_token
SELECT cti.issue_gateway_token_v1(%s, interval '1 day');

-- name: issue_wallboard_token
SELECT cti.issue_wallboard_token_v1(interval '1 day');

-- name: grant_dialer
-- Click-to-call: the demo's ingester places the calls desks ask for (docs/dba-guide.md).
GRANT cti_dialer TO {};

-- name: demo_callback_to_place
-- The oldest open callback task whose owner sits at a desk (the reference CRM: the desk
-- with the owner's extension), not yet called back from the demo.
SELECT t.id, t.e164, t.client_id, w.id, w.name
  FROM cti.callback_task t
  JOIN pgcti_refcrm.employee e ON e.id = t.owner_id
  JOIN pgcti_refcrm.workstation w ON w.extension = e.extension
 WHERE t.closed_at IS NULL AND t.e164 IS NOT NULL AND NOT t.id = ANY(%s)
 ORDER BY t.created_at DESC
 LIMIT 1;

-- name: demo_dial
SELECT cti.dial_v1(%s, %s);

-- name: demo_dial_states
SELECT id::text, state, reason FROM cti.dial_request WHERE id::text = ANY(%s);

-- name: demo_crm_client
-- The demo CRM's card of a client (ingester/demo/crm_card.py): who, company, manager, numbers.
SELECT c.name, co.name, nullif(trim(e.name || ' ' || e.surname), ''), e.extension, c.is_lead, c.created_at,
       coalesce((SELECT string_agg(p.raw, ', ' ORDER BY p.id) FROM pgcti_refcrm.client_phone p WHERE p.client_id = c.id), '')
  FROM pgcti_refcrm.client c
  LEFT JOIN pgcti_refcrm.company co ON co.id = c.company_id
  LEFT JOIN pgcti_refcrm.employee e ON e.id = c.manager_id
 WHERE c.id = %s;

-- name: demo_crm_client_calls
-- Its latest calls, from pgcti's history.
SELECT c.started_at, c.direction, coalesce(c.outcome, 'under way'), coalesce(c.answered_by, ''),
       c.ended_at - coalesce(c.answered_at, c.started_at)
  FROM cti.call c WHERE c.client_id = %s ORDER BY c.started_at DESC LIMIT 15;
