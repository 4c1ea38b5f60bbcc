SET LOCAL ROLE cti_owner;

CREATE INDEX call_leg_open ON cti.call_leg (source, created_at) WHERE ended_at IS NULL;
DROP INDEX cti.call_leg_open_by_caller;
