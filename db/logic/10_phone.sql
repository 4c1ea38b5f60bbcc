-- Phone numbers: how any spelling of a number becomes the one form pgcti compares.
--
-- Rules:
-- - A number is kept as E.164 ('+74951234567'); an internal extension as its digits ('101');
--   anything else as NULL, never as a guess.
-- - The national rules (country code, trunk prefix, international prefixes, number length,
--   how long an extension can be) are data in cti.config, not code: a DBA changes them with
--   UPDATE, then runs `pgcti rebuild`.
-- - SIP decorations ('sip:101@host', '"Name" <101>') and tel: URIs are taken apart first.
-- - A field may hold several numbers ('89161112233, 89161112234', '... или ...'): each one
--   is found (cti.phone_numbers); normalize_phone() gives the first.
-- - An extension suffix ('доб. 12', 'ext. 12', 'x12', '#12', ';ext=12') is kept apart from
--   the number, never glued onto it, as libphonenumber does. Full-width digits count as
--   digits; '+44 (0)20 ...' drops the '(0)'; '8-10' is the Russian international prefix.
-- - tests/test_phone_numbers.py holds this to libphonenumber on generated spellings.
-- Why here: the CRM's numbers and the PBX's are compared in SQL, at lookup time, by the
-- same function a CRM client may call (granted in 90_grants.sql).
-- normalize_phone() feeds stored data (call legs, the reference CRM's e164 column): it is
-- changed only by a versioned migration that replaces it and recomputes those values.
-- cti.is_extension() lives in the versioned migrations (0001, 0016): its result is stored
-- with each call leg.

-- pgcti: stored-data
-- The digits of one number (a leading '+' kept) -> E.164, or an internal extension's digits,
-- or NULL. The national rules come as an argument, so this is a pure function.
CREATE OR REPLACE FUNCTION cti.phone_from_digits(p_digits text, p_cfg cti.config) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_digits text := replace(p_digits, '+', '');
    v_prefix text;
BEGIN
    IF v_digits = '' THEN
        RETURN NULL;
    END IF;
    IF left(p_digits, 1) = '+' THEN
        RETURN CASE WHEN length(v_digits) BETWEEN 8 AND 15 THEN '+' || v_digits END;
    END IF;
    IF length(v_digits) <= p_cfg.extension_max_digits THEN
        RETURN v_digits;
    END IF;
    FOREACH v_prefix IN ARRAY p_cfg.international_prefixes LOOP
        IF v_prefix <> '' AND left(v_digits, length(v_prefix)) = v_prefix
           AND length(v_digits) - length(v_prefix) BETWEEN 8 AND 15 THEN
            RETURN '+' || substr(v_digits, length(v_prefix) + 1);
        END IF;
    END LOOP;
    IF length(v_digits) = p_cfg.national_digits + length(p_cfg.trunk_prefix)
       AND p_cfg.trunk_prefix <> '' AND left(v_digits, length(p_cfg.trunk_prefix)) = p_cfg.trunk_prefix THEN
        RETURN '+' || p_cfg.default_country_code || substr(v_digits, length(p_cfg.trunk_prefix) + 1);
    END IF;
    IF length(v_digits) = p_cfg.national_digits THEN
        RETURN '+' || p_cfg.default_country_code || v_digits;
    END IF;
    IF length(v_digits) BETWEEN 8 AND 15 THEN
        RETURN '+' || v_digits;  -- already international, written without '+'
    END IF;
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION cti.phone_from_digits(text, cti.config) IS 'The digits of one number -> E.164 or an internal extension, by the rules given';

-- pgcti: stored-data
-- Every number in a field as people type them: number (E.164, or an internal extension's
-- digits) and ext (the extension suffix, '12' of 'доб. 12'), in the order they appear.
CREATE OR REPLACE FUNCTION cti.phone_numbers(p_raw text) RETURNS TABLE (number text, ext text)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg cti.config;
    v_text text;
    v_parts text[];
    v_part text;
    v_token text;
    v_match text[];
    v_digits text;
BEGIN
    IF p_raw IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO v_cfg FROM cti.config;
    IF p_raw ~ '^\+?[0-9]{1,15}$' THEN  -- digits only, as PBXs send them: nothing to parse
        number := cti.phone_from_digits(p_raw, v_cfg);
        IF number IS NOT NULL THEN
            RETURN NEXT;
        END IF;
        RETURN;
    END IF;
    -- Full-width digits and plus, as pasted from some documents and keyboards.
    v_text := translate(p_raw, '０１２３４５６７８９＋', '0123456789+');
    -- '"Name" <sip:101@host>' -> 'sip:101@host'; then the scheme and the host go.
    v_text := regexp_replace(v_text, '^[^<]*<([^>]*)>.*$', '\1');
    v_text := regexp_replace(v_text, '^\s*(sips?|tel):', '', 'i');
    v_text := regexp_replace(v_text, '@[^,;]*', '', 'g');
    -- URI parameters: ';ext=12' is an extension, the others (phone-context, isub) go.
    v_text := regexp_replace(v_text, ';\s*ext\s*=\s*', ' ext ', 'gi');
    v_text := regexp_replace(v_text, ';\s*[a-z-]+=[^;,]*', '', 'gi');
    -- '..., доб. 12': a separator before an extension suffix does not start a new number.
    v_text := regexp_replace(v_text, '[,;]\s*(?=[дД][оО][бБ]|[вВ][нН]|ext|x\s*\d|#)', ' ', 'gi');
    -- Several numbers: split at ',', ';', '|', a line break, ' / ' or a word such as 'или'.
    -- ('8/495/123-45-67' is one number: a slash without spaces groups digits.)
    v_parts := regexp_split_to_array(v_text, '[,;|\n]+|\s+/\s+|\s+(или|ИЛИ|or|and|и)\s+', 'i');
    FOREACH v_part IN ARRAY v_parts LOOP
        ext := NULL;
        v_match := regexp_match(v_part,
            '^(.*?)[\s(,]*(?:[дД][оО][бБ](?:[аА][вВ][оО][чЧ][нН][ыЫ][йЙ])?|[вВ][нН](?:[уУ][тТ][рР])?|ext(?:ension|n)?|x|#)[.:\s№]*(\d{1,7})\s*\)?\s*$',
            'i');
        IF v_match IS NOT NULL THEN
            v_part := v_match[1];
            ext := v_match[2];
        END IF;
        -- '+44 (0)20 7946 0958': the national prefix shown in brackets is not dialled.
        v_part := regexp_replace(v_part, '^(\s*\+\s*\d{1,3}[\s.-]*)\(0\)', '\1');
        v_digits := regexp_replace(v_part, '[^0-9+]', '', 'g');
        IF length(replace(v_digits, '+', '')) <= 15 THEN
            number := cti.phone_from_digits(regexp_replace(v_digits, '(.)\+', '\1', 'g'), v_cfg);
            -- Among several numbers a few digits are a stray fragment, not an extension.
            IF number IS NOT NULL AND (left(number, 1) = '+' OR cardinality(v_parts) = 1) THEN
                RETURN NEXT;
            END IF;
            CONTINUE;
        END IF;
        -- Too many digits for one number: numbers separated by spaces only.
        FOREACH v_token IN ARRAY regexp_split_to_array(trim(v_part), '\s+') LOOP
            v_digits := regexp_replace(v_token, '[^0-9+]', '', 'g');
            IF length(replace(v_digits, '+', '')) >= v_cfg.national_digits THEN
                number := cti.phone_from_digits(v_digits, v_cfg);
                IF number IS NOT NULL THEN
                    RETURN NEXT;
                END IF;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

COMMENT ON FUNCTION cti.phone_numbers(text) IS 'Every number in a field: E.164 (or an internal extension) and its extension suffix apart; rules in cti.config';

-- pgcti: stored-data
-- A PBX or CRM number in any common spelling -> E.164 ('+74951234567'); a short
-- internal extension stays as its digits ('101'); NULL when nothing usable is left.
-- The first number of a field that holds several; its extension suffix is dropped.
CREATE OR REPLACE FUNCTION cti.normalize_phone(p_raw text) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cfg cti.config;
BEGIN
    IF p_raw ~ '^\+?[0-9]{1,15}$' THEN  -- what PBXs send: no parsing needed
        SELECT * INTO v_cfg FROM cti.config;
        RETURN cti.phone_from_digits(p_raw, v_cfg);
    END IF;
    RETURN (SELECT n.number FROM cti.phone_numbers(p_raw) n LIMIT 1);
END
$$;

COMMENT ON FUNCTION cti.normalize_phone(text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension; rules in cti.config';

-- The phone helpers of the client API, versioned like it: a CRM client matches numbers
-- as pgcti does. normalize_phone and phone_numbers keep their names for one release.
CREATE OR REPLACE FUNCTION cti.normalize_phone_v1(p_raw text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE  -- a SQL-standard body: names resolved now
RETURN cti.normalize_phone(p_raw);

COMMENT ON FUNCTION cti.normalize_phone_v1(text) IS 'Any spelling of a phone number -> E.164, or the digits of an internal extension (client API)';

CREATE OR REPLACE FUNCTION cti.phone_numbers_v1(p_raw text) RETURNS TABLE (number text, ext text)
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT n.number, n.ext FROM cti.phone_numbers(p_raw) n;
END;

COMMENT ON FUNCTION cti.phone_numbers_v1(text) IS 'Every number in a field: E.164 (or an internal extension) and its extension suffix (client API)';
