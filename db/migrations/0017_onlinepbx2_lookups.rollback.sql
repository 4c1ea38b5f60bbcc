SET LOCAL ROLE cti_owner;

DROP INDEX cti.call_bridge_leg_a, cti.call_bridge_leg_b, cti.call_leg_open;
