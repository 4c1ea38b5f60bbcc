-- What every PBX's fact function shares: reading time stamps and required fields.
--
-- Rules:
-- - A PBX time stamp may be unix seconds (number or text), milliseconds, or ISO text; one
--   that cannot be read falls back to when the frame arrived, never fails the frame.
-- - A field a fact needs and the frame lacks fails that frame with a message naming the
--   field by its path in the frame; the failure is recorded beside the raw event.

-- A PBX time stamp (unix seconds, as number or string, or ISO text) or p_default when absent or unreadable.
CREATE OR REPLACE FUNCTION cti.pbx_time(p_value jsonb, p_default timestamptz) RETURNS timestamptz
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) NOT IN ('number', 'string') THEN
        RETURN p_default;
    END IF;
    IF (p_value #>> '{}') ~ '^\d{9,10}(\.\d+)?$' THEN
        RETURN to_timestamp((p_value #>> '{}')::numeric);
    END IF;
    IF (p_value #>> '{}') ~ '^\d{13}$' THEN  -- milliseconds
        RETURN to_timestamp((p_value #>> '{}')::numeric / 1000);
    END IF;
    RETURN (p_value #>> '{}')::timestamptz;
EXCEPTION WHEN others THEN
    RETURN p_default;
END
$$;

-- A text field the fact needs; a frame without it fails with a message naming the field by
-- its path in the frame: data.X in API 3.0, args[0].X in API 2.0.
CREATE OR REPLACE FUNCTION cti.required_field(p_data jsonb, p_field text, p_event text, p_path text DEFAULT 'data') RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_value text := p_data ->> p_field;
BEGIN
    IF v_value IS NULL OR v_value = '' THEN
        RAISE EXCEPTION '% frame lacks field "%.%"', p_event, p_path, p_field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_value;
END
$$;
