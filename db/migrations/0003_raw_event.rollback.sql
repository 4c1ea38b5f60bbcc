-- Undo 0003 (drops the raw log and everything recorded in it).
DROP TABLE cti.event_outcome;
DROP TABLE cti.raw_event;
DROP FUNCTION cti.tg_raw_event__parse();
