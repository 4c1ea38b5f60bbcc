-- Settings a DBA edits (phone rules, frame size limit) and cti.normalize_phone().
-- depends: 0001_schemas_and_roles

SET LOCAL ROLE cti_owner;

-- One row. Phone rules belong in data, not in code: a DBA changes them with UPDATE,
-- then runs `pgcti rebuild` so that derived state follows.
CREATE TABLE cti.config (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    default_country_code text NOT NULL DEFAULT '7' CHECK (default_country_code ~ '^[1-9][0-9]{0,2}$'),
    trunk_prefix text NOT NULL DEFAULT '8' CHECK (trunk_prefix ~ '^[0-9]*$'),
    international_prefixes text[] NOT NULL DEFAULT ARRAY['810', '00'],
    national_digits int NOT NULL DEFAULT 10 CHECK (national_digits BETWEEN 4 AND 14),
    extension_max_digits int NOT NULL DEFAULT 5 CHECK (extension_max_digits BETWEEN 1 AND 8),
    max_frame_bytes int NOT NULL DEFAULT 1048576 CHECK (max_frame_bytes > 0),
    -- A call with no event for this long is ended by the ingester's housekeeping tick
    -- (its end never came: lost while the PBX connection was down). Its card is closed.
    stale_call_after interval NOT NULL DEFAULT '2 hours' CHECK (stale_call_after > interval '0')
);
COMMENT ON TABLE cti.config IS 'pgcti settings (one row): phone rules and the raw frame size limit; edit with UPDATE';
INSERT INTO cti.config DEFAULT VALUES;

-- A PBX or CRM number in any common spelling -> E.164 ('+74951234567'); a short
-- internal extension stays as its digits ('101'); NULL when nothing usable is left.
CREATE FUNCTION cti.normalize_phone(p_raw text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg cti.config;
    v_digits text;
    v_prefix text;
BEGIN
    IF p_raw IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_cfg FROM cti.config;
    -- Drop SIP decorations ('sip:101@host', '"Name" <101>') before keeping only digits.
    v_digits := regexp_replace(split_part(regexp_replace(p_raw, '^.*<|>.*$|^(sips?|tel):', '', 'g'), '@', 1),
                               '[^0-9+]', '', 'g');
    IF v_digits = '' OR v_digits = '+' THEN
        RETURN NULL;
    END IF;
    IF left(v_digits, 1) = '+' THEN
        v_digits := replace(v_digits, '+', '');
        RETURN CASE WHEN length(v_digits) BETWEEN 8 AND 15 THEN '+' || v_digits END;
    END IF;
    v_digits := replace(v_digits, '+', '');
    IF length(v_digits) <= v_cfg.extension_max_digits THEN
        RETURN v_digits;
    END IF;
    FOREACH v_prefix IN ARRAY v_cfg.international_prefixes LOOP
        IF v_prefix <> '' AND left(v_digits, length(v_prefix)) = v_prefix
           AND length(v_digits) - length(v_prefix) BETWEEN 8 AND 15 THEN
            RETURN '+' || substr(v_digits, length(v_prefix) + 1);
        END IF;
    END LOOP;
    IF length(v_digits) = v_cfg.national_digits + length(v_cfg.trunk_prefix)
       AND v_cfg.trunk_prefix <> '' AND left(v_digits, length(v_cfg.trunk_prefix)) = v_cfg.trunk_prefix THEN
        RETURN '+' || v_cfg.default_country_code || substr(v_digits, length(v_cfg.trunk_prefix) + 1);
    END IF;
    IF length(v_digits) = v_cfg.national_digits THEN
        RETURN '+' || v_cfg.default_country_code || v_digits;
    END IF;
    IF length(v_digits) BETWEEN 8 AND 15 THEN
        RETURN '+' || v_digits;  -- already international, written without '+'
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION cti.normalize_phone(text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension; rules in cti.config';

-- True for what normalize_phone() returns for an internal extension.
CREATE FUNCTION cti.is_extension(p_normalized text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT p_normalized IS NOT NULL AND left(p_normalized, 1) <> '+' $$;
