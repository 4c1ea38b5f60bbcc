-- A directory of E.164 numbers kept from a CRM's own phone columns, for lookups at index speed.
-- depends: 0005_ingester_logins_per_database

-- The CRM's tables pgcti does not own keep their shape.
-- Why: cti.normalize_phone() reads its rules from cti.config, so it cannot be IMMUTABLE and
-- no expression index can be built on it over a CRM's column. Instead a DBA attaches a
-- column (cti.attach_phone_column, db/logic/15_phone_directory.sql): a trigger keeps every
-- number found in it here, beside the CRM's key of its row, and an index on e164 serves the
-- adapter's lookup. When the phone rules change, the directory is recomputed.

SET LOCAL ROLE cti_owner;

-- Each attached CRM column: where the numbers are, which column identifies the row, and
-- which one is the CRM key a lookup returns (a client id, a contact uuid ...).
CREATE TABLE cti.phone_source (
    id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_name regclass NOT NULL,
    phone_column name NOT NULL,
    row_column name NOT NULL,
    key_column name NOT NULL,
    attached_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (table_name, phone_column)
);
COMMENT ON TABLE cti.phone_source IS 'CRM phone columns attached to the phone directory (cti.attach_phone_column)';

CREATE TABLE cti.phone_directory (
    source_id int NOT NULL REFERENCES cti.phone_source (id) ON DELETE CASCADE,
    row_id text NOT NULL,     -- the CRM row the number is in (its row_column, as text)
    crm_key text NOT NULL,    -- what a lookup returns (its key_column, as text)
    e164 text NOT NULL,
    ext text,                 -- the extension suffix typed after the number ('доб. 12')
    PRIMARY KEY (source_id, row_id, e164)
);
-- Covering: a lookup reads the CRM key from the index alone (an index-only scan).
CREATE INDEX phone_directory_e164 ON cti.phone_directory (e164) INCLUDE (crm_key);
COMMENT ON TABLE cti.phone_directory IS 'Every E.164 number in the attached CRM columns, with the CRM key of its row; kept by triggers';
