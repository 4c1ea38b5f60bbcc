-- Undo 0011 (raw events inserted afterwards are stored but not processed until re-applied and rebuilt).
DROP FUNCTION cti.rebuild();
DROP TRIGGER _500_process ON cti.raw_event;
DROP FUNCTION cti.tg_raw_event__process();
DROP FUNCTION cti.process_and_record(cti.raw_event, boolean);
DROP FUNCTION cti.process_event(cti.raw_event, boolean);
DROP FUNCTION cti.end_stale_calls(timestamptz, boolean);
