-- Processing of each raw event inside its INSERT (errors recorded, never lost), and rebuild from the raw log.
-- depends: 0010_refresh_call

SET LOCAL ROLE cti_owner;

-- End calls that have heard nothing for cti.config.stale_call_after: their end was lost
-- (sent while the PBX connection was down; the PBX does not re-send). Run by the ingester's
-- tick, a raw event like any other, so a rebuild ends the same calls at the same point.
CREATE FUNCTION cti.end_stale_calls(p_now timestamptz, p_live boolean) RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_call_id bigint;
    v_count int := 0;
BEGIN
    FOR v_call_id IN
        SELECT c.id FROM cti.call c, cti.config g
         WHERE c.ended_at IS NULL AND c.last_event_at < p_now - g.stale_call_after
         ORDER BY c.id
           FOR UPDATE OF c SKIP LOCKED
    LOOP
        UPDATE cti.call SET pbx_ended = true, ended_at = last_event_at,
                            hangup_cause = coalesce(hangup_cause, 'PGCTI_STALE')
         WHERE id = v_call_id;
        PERFORM cti.refresh_call(v_call_id, p_now, p_live);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END
$$;
COMMENT ON FUNCTION cti.end_stale_calls(timestamptz, boolean) IS 'End calls silent for cti.config.stale_call_after (their end was lost); cards get call_ended';

-- Normalise one raw event, apply its facts, refresh the calls they touch.
-- Raises on bad frames; cti.process_and_record() turns that into a 'failed' outcome.
CREATE FUNCTION cti.process_event(p_event cti.raw_event, p_live boolean, OUT status text, OUT detail text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_fact cti.fact;
    v_calls bigint[] := '{}';
    v_call_id bigint;
    v_notes text[] := '{}';
BEGIN
    IF p_event.parse_error IS NOT NULL THEN
        status := 'failed';
        detail := p_event.parse_error;
        RETURN;
    END IF;
    IF p_event.source = 'pgcti' THEN  -- the ingester's housekeeping tick
        status := 'processed';
        detail := format('tick: %s stale call(s) ended', cti.end_stale_calls(p_event.received_at, p_live));
        RETURN;
    END IF;
    IF p_event.source NOT IN ('onlinepbx3', 'onlinepbx2') THEN
        RAISE EXCEPTION 'no normaliser for source "%"', p_event.source USING HINT = 'known sources: onlinepbx3, onlinepbx2';
    END IF;
    FOR v_fact IN
        SELECT * FROM cti.normalize_onlinepbx3(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx3'
        UNION ALL
        SELECT * FROM cti.normalize_onlinepbx2(p_event.frame, p_event.received_at) WHERE p_event.source = 'onlinepbx2'
    LOOP
        IF v_fact.kind = 'ignored' THEN
            v_notes := v_notes || v_fact.note;
        ELSE
            v_call_id := cti.apply_fact(p_event.source, v_fact);
            IF NOT v_call_id = ANY (v_calls) THEN
                v_calls := v_calls || v_call_id;
            END IF;
        END IF;
    END LOOP;
    FOREACH v_call_id IN ARRAY v_calls LOOP
        PERFORM cti.refresh_call(v_call_id, p_event.received_at, p_live);
    END LOOP;
    IF cardinality(v_calls) = 0 THEN
        status := 'ignored';
        detail := array_to_string(v_notes, '; ');
    ELSE
        status := 'processed';
    END IF;
END
$$;

-- A trigger never loses the row that fired it: any error is caught (its subtransaction
-- rolled back) and stored as the event's outcome; the INSERT itself commits.
CREATE FUNCTION cti.process_and_record(p_event cti.raw_event, p_live boolean) RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_status text;
    v_detail text;
BEGIN
    BEGIN
        SELECT r.status, r.detail INTO v_status, v_detail FROM cti.process_event(p_event, p_live) r;
    EXCEPTION WHEN others THEN
        v_status := 'failed';
        v_detail := SQLERRM;
    END;
    INSERT INTO cti.event_outcome (raw_event_id, status, detail) VALUES (p_event.id, v_status, v_detail)
    ON CONFLICT (raw_event_id) DO UPDATE
       SET status = EXCLUDED.status, detail = EXCLUDED.detail, processed_at = EXCLUDED.processed_at;
    RETURN v_status;
END
$$;

-- Runs as the owner: the ingester's role may insert raw events and nothing else.
CREATE FUNCTION cti.tg_raw_event__process() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM cti.process_and_record(NEW, true);
    RETURN NULL;
END
$$;

-- AFTER, so that a duplicate frame (ON CONFLICT DO NOTHING) never reaches processing.
CREATE TRIGGER _500_process AFTER INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__process();

-- Re-derive every call from the raw log, in arrival order, sending nothing. Call ids are
-- kept (the outbox refers to them); calls no raw event produces any more are removed.
CREATE FUNCTION cti.rebuild() RETURNS TABLE (events bigint, processed bigint, ignored bigint, failed bigint)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_event cti.raw_event;
BEGIN
    -- New frames wait (their INSERT blocks) until the rebuild commits, then are processed live.
    LOCK TABLE cti.raw_event IN SHARE MODE;
    DELETE FROM cti.call_leg;
    DELETE FROM cti.call_bridge;
    DELETE FROM cti.call_transfer;
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
