-- Calls from Asterisk AMI: extensions known by channel, trunk rules, stays in bridges.
-- depends: 0008_gateway_tokens

-- The rules are in db/logic/43_facts_asterisk.sql; here are the tables and settings they use.

SET LOCAL ROLE cti_owner;

-- On AMI, an extension is known by its channel (PJSIP/150010002-0000001d is extension
-- 150010002), not by the shape of a number. A fact may say so; when it says nothing
-- (onlinePBX), the number's shape decides as before.
ALTER TYPE cti.fact
    ADD ATTRIBUTE caller_is_extension boolean,
    ADD ATTRIBUTE destination_is_extension boolean;

-- So these two stop being computed from the numbers: apply_facts() writes them.
ALTER TABLE cti.call_leg
    ALTER COLUMN caller_is_extension DROP EXPRESSION,
    ALTER COLUMN destination_is_extension DROP EXPRESSION;
ALTER TABLE cti.call_leg
    ALTER COLUMN caller_is_extension SET DEFAULT false,
    ALTER COLUMN caller_is_extension SET NOT NULL,
    ALTER COLUMN destination_is_extension SET DEFAULT false,
    ALTER COLUMN destination_is_extension SET NOT NULL;

-- True when every element is a regular expression PostgreSQL can compile. Here, not in
-- db/logic, because a check constraint on cti.config uses it.
CREATE FUNCTION cti.are_regular_expressions(p_patterns text[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM '' ~ p FROM unnest(p_patterns) p;
    RETURN true;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN false;
END
$$;

ALTER TABLE cti.config
    -- AMI channels that are trunks (to or from the outside): regular expressions on the
    -- channel name, e.g. '^PJSIP/mts-'. A channel whose peer name is not all digits is a
    -- trunk anyway, unless cti.crm_extension_for_channel() maps it to an extension. A
    -- pattern that does not compile is refused here, not met by every AMI frame later.
    ADD COLUMN ami_trunk_channels text[] NOT NULL DEFAULT '{}'
        CONSTRAINT ami_trunk_channels_are_regular_expressions CHECK (cti.are_regular_expressions(ami_trunk_channels)),
    -- Dialplan contexts where calls from outside start (FreePBX: from-trunk, from-pstn):
    -- a channel created in one of them is a trunk.
    ADD COLUMN ami_trunk_contexts text[] NOT NULL DEFAULT ARRAY['from-trunk', 'from-pstn'];

-- Who was in which Asterisk bridge, and when: AMI says only "channel X entered bridge B",
-- so who talks to whom is worked out from these stays. `member` is the channel's Uniqueid,
-- or, for a Local/ channel, its name without ';1'/';2' (both halves are one wire).
-- Times are (the PBX's time or arrival, raw event id): one AMI stream is in order.
CREATE TABLE cti.ami_bridge_member (
    source text NOT NULL,
    bridge_id text NOT NULL,
    member text NOT NULL,
    is_local boolean NOT NULL,
    entered_at timestamptz,
    entered_seq bigint,
    left_at timestamptz,
    left_seq bigint,
    PRIMARY KEY (source, bridge_id, member)
);
CREATE INDEX ami_bridge_member_member ON cti.ami_bridge_member (source, member);
COMMENT ON TABLE cti.ami_bridge_member IS 'Asterisk bridges: which channel was in which bridge, from when until when (derived; rebuild makes it again)';
