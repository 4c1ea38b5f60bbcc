-- Undo 0010.
DROP FUNCTION cti.refresh_call(bigint, timestamptz, boolean);
