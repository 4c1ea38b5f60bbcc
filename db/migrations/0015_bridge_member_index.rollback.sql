SET LOCAL ROLE cti_owner;

DROP INDEX cti.ami_bridge_member_member;
CREATE INDEX ami_bridge_member_member ON cti.ami_bridge_member (source, member);
