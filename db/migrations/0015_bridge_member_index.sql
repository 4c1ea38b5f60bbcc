-- The index that finds a channel's stays in Asterisk bridges leads with the channel.
-- depends: 0014_outbox_keep

-- Why: (source, member) also served a lookup by bridge through its first column alone.
-- On a table analyzed while empty both indexes cost the same, and the plan a session made
-- then walked every stay of the source for each bridge: 9 ms a call after 2,000 blocks,
-- growing with the history. Led by member, it can serve nothing but a lookup by member,
-- and the primary key (source, bridge_id, member) is the only way to a bridge.

SET LOCAL ROLE cti_owner;

DROP INDEX cti.ami_bridge_member_member;
CREATE INDEX ami_bridge_member_member ON cti.ami_bridge_member (member, source);
