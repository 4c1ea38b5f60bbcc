-- Undo 0011. The logic of this release writes a bytea key: after rolling this back, apply
-- the previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

-- This release's trigger names the key in its WHEN clause; the previous one fired on every row.
DROP TRIGGER _100_parse ON cti.raw_event;
ALTER TABLE cti.raw_event ALTER COLUMN dedup_key TYPE text USING encode(dedup_key, 'hex');
CREATE TRIGGER _100_parse BEFORE INSERT ON cti.raw_event
    FOR EACH ROW EXECUTE FUNCTION cti.tg_raw_event__parse();
