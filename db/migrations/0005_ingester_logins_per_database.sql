-- Ingester logins registered per database: a login made for one database cannot write raw events in another.
-- depends: 0004_channel_names_not_guessable

-- Why: roles are cluster-wide and PUBLIC keeps CONNECT, so a login made for database
-- pgcti_staging (a member of cti_ingester) could insert raw events into database pgcti on
-- the same server. Now the processing trigger refuses a login that is not registered in
-- this database's cti.ingester_login (db/logic/65_processing.sql). CRM client logins were
-- already per database: each is bound in its database's cti.client_login.

SET LOCAL ROLE cti_owner;

CREATE TABLE cti.ingester_login (
    login name PRIMARY KEY,
    registered_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE cti.ingester_login IS 'Logins (members of cti_ingester) that may write raw events in this database';

-- A database that has been ingesting keeps doing so: there, every login that is a member
-- of cti_ingester now is registered (which one wrote here is not recorded); a DBA removes
-- those that belong to another database (docs/dba-guide.md). A new database registers none.
INSERT INTO cti.ingester_login (login)
SELECT r.rolname FROM pg_catalog.pg_roles r
 WHERE r.rolcanlogin AND pg_catalog.pg_has_role(r.oid, 'cti_ingester', 'MEMBER')
   AND EXISTS (SELECT FROM cti.raw_event)
ON CONFLICT DO NOTHING;
