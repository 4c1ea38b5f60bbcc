-- How long an acknowledged outbox item is kept: the ingester's tick removes older ones.
-- depends: 0013_outcome_notes

-- Why: cti.outbox gets a row for every card, ring and callback item, for ever, while a
-- client needs only what it has not acknowledged. The calls themselves (the contact
-- history) are kept; this is the delivery queue. NULL keeps every item.

SET LOCAL ROLE cti_owner;

ALTER TABLE cti.config
    ADD COLUMN outbox_keep interval DEFAULT '30 days' CHECK (outbox_keep > interval '0');
COMMENT ON COLUMN cti.config.outbox_keep IS 'Acknowledged outbox items older than this are removed by the ingester''s tick (NULL: kept for ever); unacknowledged ones always stay';
