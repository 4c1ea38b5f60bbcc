-- A key that makes each stream's LISTEN channel name unguessable.
-- depends: 0003_doorbells_skipped_when_the_queue_fills

-- Why: any login may LISTEN on any channel. With names like cti_ws_v1_12, any desk could
-- watch every other desk's doorbells: ids only, but the volume and timing of its calls.
-- Now a channel name ends with 96 bits derived from this key (db/logic/60_outbox.sql); a
-- client learns its own from cti.whoami_v1(), and no client can read the key.

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.channel_key (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    key bytea NOT NULL,
    rotated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cti.channel_key IS 'Secret that makes LISTEN channel names unguessable; rotate with cti.rotate_channel_key()';
-- 32 random bytes (gen_random_uuid() is built in from PostgreSQL 13; no extension needed).
INSERT INTO cti.channel_key (key)
VALUES (decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
