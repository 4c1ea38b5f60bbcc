-- Every function privilege pgcti grants, in one place, and the reader's views (table
-- privileges: the baseline).
-- pgcti: after-any-change
--
-- Rules:
-- - PUBLIC may execute nothing: cti_owner's default privileges (baseline) take EXECUTE
--   away from every function it creates, so a new function is private until named here.
-- - CRM client logins (cti_client) get the versioned client API, and normalize_phone_v1()
--   and phone_numbers_v1() (and their names of the release before) so
--   that a client can match numbers as pgcti does. Each API function finds the caller's own
--   workstation by login, so a client reaches only its own stream.
-- - The ingester (cti_ingester) gets one function, cti.ingest_frames_v1(), which stores raw
--   events and nothing else; its INSERT on three columns of cti.raw_event (baseline) stays
--   for ingesters of earlier releases. The processing trigger runs as the owner.
-- Re-run whenever any logic file is applied, so a function that a versioned migration
-- dropped and recreated gets its grant back. GRANT is idempotent: running it twice changes nothing.

-- Not only by default privileges: they belong to whoever created the database's functions,
-- and a database restored or adopted from elsewhere may lack them.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA cti FROM PUBLIC;

GRANT EXECUTE ON FUNCTION cti.whoami_v1(), cti.epoch_v1(), cti.pull_commands_v1(bigint, int), cti.ack_commands_v1(bigint),
    cti.pull_notifications_v1(bigint, int), cti.ack_notifications_v1(bigint), cti.callback_tasks_v1(),
    cti.normalize_phone_v1(text), cti.phone_numbers_v1(text),
    cti.normalize_phone(text), cti.phone_numbers(text), cti.phone_from_digits(text, cti.config) TO cti_client;
-- Click-to-call: a desk dials from its own extension and sees its own requests.
GRANT EXECUTE ON FUNCTION cti.dial_v1(text, bigint), cti.dial_requests_v1(interval) TO cti_client;
-- The edge that places calls (an ingester login made a member of cti_dialer, only where
-- click-to-call is used): it claims requests, nothing else. Outcomes come through the raw log.
GRANT EXECUTE ON FUNCTION cti.dial_claim_v1(text, int) TO cti_dialer;
-- Presence: a desk sets its own, and sees everyone's.
GRANT EXECUTE ON FUNCTION cti.set_presence_v1(text, timestamptz), cti.presence_v1() TO cti_client;
-- Reporting logins (members of cti_reader): the history and analytics views, and every
-- function they call, which PostgreSQL checks as the one who reads (tables: as the view's
-- owner). Views that call a CRM adapter run the adapter as the reader too: a DBA's adapter
-- that reads the CRM's tables needs the reader to have SELECT on them (docs/sql-analytics.md).
GRANT SELECT ON cti.call_history_v1, cti.client_contact_summary_v1, cti.daily_call_stats_v1,
    cti.employee_call_stats_v1, cti.sales_funnel_v1, cti.manager_answer_share_v1,
    cti.route_decisions_v1, cti.queue_stats_v1, cti.queue_agent_stats_v1 TO cti_reader;
GRANT EXECUTE ON FUNCTION cti.period_summary_v1(date, date), cti.manager_summary_v1(date, date),
    cti.queue_stats_between(timestamptz, timestamptz), cti.task_day(cti.callback_task),
    cti.client_kind(cti.call), cti.callback_party(bigint, text), cti.is_extension(text),
    cti.dial_request_of_call(cti.call), cti.normalize_phone(text),
    cti.crm_deals(), cti.crm_extension_for_employee(bigint) TO cti_reader;
-- The PBX's routing login (func_odbc): one function, nothing else.
GRANT EXECUTE ON FUNCTION cti.route_v1(text, text) TO cti_router;

GRANT EXECUTE ON FUNCTION cti.ingest_frames_v1(text[], timestamptz[], text[]) TO cti_ingester;

-- Desk logins may issue a browser token for themselves (the function checks who asks).
GRANT EXECUTE ON FUNCTION cti.issue_gateway_token_v1(name, interval) TO cti_client;
-- The gateway's login: tokens in, its token's streams out; no table, no other function.
GRANT EXECUTE ON FUNCTION cti.gateway_whoami_v1(text), cti.gateway_pull_v1(text, text, bigint, int),
    cti.gateway_ack_v1(text, text, bigint), cti.gateway_contacts_v1(text, bigint, int),
    cti.gateway_wallboard_v1(text), cti.gateway_dial_v1(text, text, bigint),
    cti.gateway_dial_requests_v1(text), cti.gateway_set_presence_v1(text, text, timestamptz),
    cti.gateway_route_v1(text, text, text), cti.gateway_recording_v1(text, bigint),
    cti.gateway_recording_v2(text, bigint),
    cti.gateway_desk_v1(text) TO cti_gateway;
-- ... and the names of the release before, for one release (75_gateway.sql).
GRANT EXECUTE ON FUNCTION cti.gateway_whoami(text), cti.gateway_pull(text, text, bigint, int),
    cti.gateway_ack(text, text, bigint), cti.gateway_contacts(text, bigint, int),
    cti.gateway_wallboard(text) TO cti_gateway;
