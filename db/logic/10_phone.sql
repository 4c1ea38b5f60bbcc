-- [from 0002_config_and_phone.sql]
-- pgcti: stored-data
-- A PBX or CRM number in any common spelling -> E.164 ('+74951234567'); a short
-- internal extension stays as its digits ('101'); NULL when nothing usable is left.
CREATE OR REPLACE FUNCTION cti.normalize_phone(p_raw text) RETURNS text
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

-- [from 0002_config_and_phone.sql]
COMMENT ON FUNCTION cti.normalize_phone(text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension; rules in cti.config';
