-- Undo 0008.
DROP FUNCTION cti.normalize_onlinepbx2(jsonb, timestamptz);
DROP FUNCTION cti.normalize_onlinepbx3(jsonb, timestamptz);
DROP FUNCTION cti.required_field(jsonb, text, text);
DROP FUNCTION cti.pbx_time(jsonb, timestamptz);
DROP TYPE cti.fact;
