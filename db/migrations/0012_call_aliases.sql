-- The ids of calls merged into another stay the merged call's.
-- depends: 0011_raw_log_parsed_in_the_insert

-- Why: on Asterisk a bridge can show two Linkedids to be one call before every leg of the
-- second has been seen (an attended transfer's consultation and the customer's call, in
-- any order). The merged-away call's row goes; its Linkedid must still lead to the call it
-- went into, or its next leg starts a new call that rings everyone again.

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.call_alias (
    source text NOT NULL,
    pbx_call_id text NOT NULL,
    call_id bigint NOT NULL REFERENCES cti.call (id) ON DELETE CASCADE,
    PRIMARY KEY (source, pbx_call_id)
);
COMMENT ON TABLE cti.call_alias IS 'The PBX id of each call merged into another, and the call it went into';
CREATE INDEX call_alias_call ON cti.call_alias (call_id);
