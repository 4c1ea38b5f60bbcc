-- A call a phone rejected, and a caller who withholds their number.
-- depends: 0020_tokens_die_with_their_login

-- Why: a device that rejects a call (SIP 603; AMI: DialEnd BUSY, then Hangup 21 "Call
-- Rejected") was recorded as busy; users call it rejected. And a caller who withholds
-- their number (presentation prohibited, or a caller id such as "anonymous") had it
-- shown on cards: the raw log keeps what the PBX sent, but nothing shown to people may.

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.call DROP CONSTRAINT call_outcome_check;
ALTER TABLE cti.call ADD CONSTRAINT call_outcome_check
    CHECK (outcome IN ('answered', 'missed', 'busy', 'rejected', 'abandoned', 'no_answer'));

ALTER TABLE cti.call_leg ADD COLUMN caller_withheld boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN cti.call_leg.caller_withheld IS 'The caller withheld their number (presentation prohibited, or no number): shown to no one';
ALTER TABLE cti.call ADD COLUMN caller_withheld boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN cti.call.caller_withheld IS 'The customer withheld their number: cards, notifications and history show "withheld", not the number';
ALTER TABLE cti.config ADD COLUMN lookup_withheld_numbers boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN cti.config.lookup_withheld_numbers IS 'Look a withheld number up in the CRM all the same (its client is shown, the number never is)';

-- cti.ami_extension takes what the event shows too (db/logic/43_facts_asterisk.sql): the
-- two-argument form goes, db/logic makes the new one.
DROP FUNCTION IF EXISTS cti.ami_extension(text, text);
