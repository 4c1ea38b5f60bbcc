-- Undo 0009. The logic of this release uses what goes here: after rolling this back, apply
-- the previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

DROP TABLE cti.ami_bridge_member;
ALTER TABLE cti.config DROP COLUMN ami_trunk_channels, DROP COLUMN ami_trunk_contexts;
DROP FUNCTION cti.are_regular_expressions(text[]);
ALTER TABLE cti.call_leg
    DROP COLUMN caller_is_extension,
    DROP COLUMN destination_is_extension;
ALTER TABLE cti.call_leg
    ADD COLUMN caller_is_extension boolean GENERATED ALWAYS AS (cti.is_extension(caller)) STORED,
    ADD COLUMN destination_is_extension boolean GENERATED ALWAYS AS (cti.is_extension(destination)) STORED;
ALTER TYPE cti.fact DROP ATTRIBUTE caller_is_extension CASCADE, DROP ATTRIBUTE destination_is_extension CASCADE;
