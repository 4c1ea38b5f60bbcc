-- Phone numbers: how any spelling of a number becomes the one form pgcti compares.
--
-- Rules:
-- - A number is kept as E.164 ('+74951234567'); an internal extension as its digits ('101');
--   anything else as NULL, never as a guess.
-- - The national rules (country code, trunk prefix, international prefixes, number length,
--   how long an extension can be) are data in cti.config, not code: a DBA changes them with
--   UPDATE, then runs `pgcti rebuild`.
-- - SIP decorations ('sip:101@host', '"Name" <101>', 'tel:') are dropped first.
-- Why here: the CRM's numbers and the PBX's are compared in SQL, at lookup time, by the
-- same function a CRM client may call (granted in 90_grants.sql).
-- normalize_phone() feeds stored data (call legs, the reference CRM's e164 column): it is
-- changed only by a versioned migration that replaces it and recomputes those values.
-- cti.is_extension() lives in the baseline migration: call_leg's generated columns use it.

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

COMMENT ON FUNCTION cti.normalize_phone(text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension; rules in cti.config';
