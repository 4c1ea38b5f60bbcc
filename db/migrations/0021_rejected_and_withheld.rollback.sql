-- CASCADE: the views and SQL-standard functions of db/logic that read the new columns go
-- with them; the older release's migrate puts its own logic back.
SET LOCAL ROLE cti_owner;

ALTER TABLE cti.config DROP COLUMN lookup_withheld_numbers;
ALTER TABLE cti.call DROP COLUMN caller_withheld CASCADE;
ALTER TABLE cti.call_leg DROP COLUMN caller_withheld CASCADE;
UPDATE cti.call SET outcome = 'busy' WHERE outcome = 'rejected';
ALTER TABLE cti.call DROP CONSTRAINT call_outcome_check;
ALTER TABLE cti.call ADD CONSTRAINT call_outcome_check
    CHECK (outcome IN ('answered', 'missed', 'busy', 'abandoned', 'no_answer'));
