-- Rebuild: every call derived again from the raw log, after a change of the rules (a phone
-- rule, a fixed fact function) or of the CRM's data.
--
-- Rules:
-- - The raw log is the only input: rebuild re-derives everything from it, frame by frame in
--   arrival order, through the same processing as live frames (65_processing.sql), so the
--   result is what live processing of the same frames gives (tests compare them).
-- - It sends nothing: no command, no notification, no doorbell; clients keep what they have.
-- - Call ids stay (the outbox refers to them); a call that no raw event produces any more is
--   removed. Callback tasks, transfers, bridges and merges are made again, in the same order.
-- - New frames wait for it: their INSERT blocks until the rebuild commits, then they are
--   processed live.

CREATE OR REPLACE FUNCTION cti.rebuild() RETURNS TABLE (events bigint, processed bigint, ignored bigint, failed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET enable_seqscan = off  -- as live processing (see 65_processing.sql)
SET jit = off
SET plan_cache_mode = force_generic_plan  -- as live processing
AS $$
DECLARE
    v_event cti.raw_event;
BEGIN
    LOCK TABLE cti.raw_event IN SHARE MODE;
    DELETE FROM cti.callback_task;  -- made again from the calls, in the same order
    DELETE FROM cti.callback_party_key;
    DELETE FROM cti.call_leg;
    DELETE FROM cti.call_bridge;
    DELETE FROM cti.call_transfer;
    DELETE FROM cti.ami_bridge_member;
    DELETE FROM cti.call_alias;  -- merges happen again, in the same order
    DELETE FROM cti.queue_attempt;  -- queue facts and recordings come from the raw log too
    DELETE FROM cti.queue_call;
    DELETE FROM cti.recording;
    UPDATE cti.call SET direction = NULL, external_number = NULL, external_number_raw = NULL, dialled = NULL,
        client_id = NULL, client_match = NULL, client_candidates = NULL, client_card = NULL,
        started_at = NULL, last_event_at = NULL, answered_at = NULL, answered_by = NULL, holder_extension = NULL, ended_at = NULL,
        outcome = NULL, hangup_cause = NULL, hold_count = 0, pbx_ended = false, ring_notified = false,
        card_workstation_id = NULL, routing_note = NULL;
    FOR v_event IN SELECT * FROM cti.raw_event ORDER BY id LOOP
        PERFORM cti.process_and_record(v_event, false);
    END LOOP;
    DELETE FROM cti.call c WHERE NOT EXISTS (SELECT FROM cti.call_leg l WHERE l.call_id = c.id)
                             AND NOT c.pbx_ended;
    RETURN QUERY SELECT count(*), count(*) FILTER (WHERE o.status = 'processed'),
                        count(*) FILTER (WHERE o.status = 'ignored'), count(*) FILTER (WHERE o.status = 'failed')
                   FROM cti.event_outcome o;
END
$$;

COMMENT ON FUNCTION cti.rebuild() IS 'Re-derive calls and outcomes from cti.raw_event (after a phone rule change, say) without sending any command';
