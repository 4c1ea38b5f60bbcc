-- onlinePBX presence from both APIs: one function reads 2.0's and 3.0's events.
-- depends: 0024_queues_and_recordings

-- Why: presence came from 2.0's blf only; 2.0's registration and 3.0's user_blf and
-- user_registration events are now read too (db/logic/56_presence.sql), by
-- cti.presence_from_onlinepbx. The 2.0-only function goes; db/logic makes the new one.

SET LOCAL ROLE cti_owner;
DROP FUNCTION IF EXISTS cti.presence_from_onlinepbx2(jsonb, timestamptz);
