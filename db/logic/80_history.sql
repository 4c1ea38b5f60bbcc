-- Contact history: every call with its transfer chain, and per-client summaries.
--
-- Rules:
-- - Response time is from the start of the call to the first answer.
-- - A missed call is an inbound call that ended missed, abandoned or busy; "missed and not
--   called back" means no answered call after the last missed one.
-- - client_kind says which of the CRM's records client_id is ('client' or 'lead'); the
--   per-client summary counts clients only, since a lead's id is of another id space.
-- - A call placed from the CRM (click-to-call) names its request and the desk that asked.
-- Views, versioned like the client API: their columns are what reports depend on.

CREATE OR REPLACE VIEW cti.call_history_v1 AS
SELECT c.id AS call_id, c.source, c.pbx_call_id, c.direction,
       CASE WHEN NOT c.caller_withheld THEN c.external_number END AS external_number, c.dialled,
       c.client_id, c.client_match, c.started_at, c.answered_at, c.answered_by,
       c.holder_extension AS last_extension, c.ended_at, c.outcome, c.hangup_cause, c.hold_count,
       c.answered_at - c.started_at AS response_time,
       c.ended_at - coalesce(c.answered_at, c.started_at) AS duration,
       CASE WHEN c.answered_by IS NULL THEN ARRAY[]::text[]
            ELSE c.answered_by || ARRAY(SELECT t.to_extension FROM cti.call_transfer t
                                         WHERE t.call_id = c.id ORDER BY t.step) END AS extension_chain,
       cti.client_kind(c) AS client_kind,  -- added last: a view's columns keep their places
       c.caller_withheld AS withheld,  -- the customer withheld the number (then not shown)
       d.id AS dial_request_id,  -- placed from the CRM: the request (54_dialing.sql) ...
       d.workstation_id AS dialled_from_workstation  -- ... and the desk that asked
  FROM cti.call c
  LEFT JOIN cti.dial_request d ON c.direction IN ('outbound', 'internal') AND d.id = cti.dial_request_of_call(c);

COMMENT ON VIEW cti.call_history_v1 IS 'Every call: number, client (and whether a client or a lead), direction, times, response time, who answered, the transfer chain, outcome';

-- Calls per client, missed calls and whether we called back after the last missed one.
CREATE OR REPLACE VIEW cti.client_contact_summary_v1 AS
SELECT h.client_id,
       count(*) AS calls,
       count(*) FILTER (WHERE h.direction = 'inbound') AS inbound_calls,
       count(*) FILTER (WHERE h.outcome IN ('missed', 'abandoned', 'busy', 'rejected') AND h.direction = 'inbound') AS missed_calls,
       avg(h.response_time) FILTER (WHERE h.direction = 'inbound') AS avg_response_time,
       max(h.started_at) AS last_call_at,
       max(h.started_at) FILTER (WHERE h.outcome IN ('missed', 'abandoned', 'busy', 'rejected') AND h.direction = 'inbound') AS last_missed_at,
       -- Never reached at all counts too: no answered call is older than any missed one.
       coalesce(max(h.started_at) FILTER (WHERE h.outcome IN ('missed', 'abandoned', 'busy', 'rejected') AND h.direction = 'inbound')
                > coalesce(max(h.started_at) FILTER (WHERE h.outcome = 'answered'), '-infinity'), false) AS missed_not_called_back
  FROM cti.call_history_v1 h
 WHERE h.client_id IS NOT NULL AND h.client_kind = 'client'
 GROUP BY h.client_id;

COMMENT ON VIEW cti.client_contact_summary_v1 IS 'Per client: calls, missed calls, average response time, missed and not called back';
