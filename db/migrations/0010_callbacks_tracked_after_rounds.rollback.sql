-- Undo 0010. The logic of this release uses what goes here: after rolling this back, apply
-- the previous release's logic (`PGCTI_LOGIC=<previous release>/db/logic pgcti migrate`).

SET LOCAL ROLE cti_owner;

ALTER TYPE cti.derivation_result
    DROP ATTRIBUTE callback_steps CASCADE,
    DROP ATTRIBUTE callback_keys CASCADE;
