-- Undo 0009.
DROP FUNCTION cti.call_payload(cti.call);
DROP FUNCTION cti.identify_client(cti.call, boolean);
DROP FUNCTION cti.apply_fact(text, cti.fact);
DROP FUNCTION cti.correlate_onlinepbx2(text, cti.fact);
DROP FUNCTION cti.merge_calls(bigint, bigint);
DROP TABLE cti.registered_number;
