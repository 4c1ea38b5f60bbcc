-- `pgcti migrate`: yoyo's bookkeeping, the logic files' checksums, rights and roles; scratch databases.
-- Named statements of the Python edge (ingester/queries.py loads every file here); `{}`
-- marks an identifier psycopg.sql fills in. No business rule: those are in db/logic.

-- name: logic_catalog
-- Every function, view and trigger in pgcti's schemas with its definition and comment:
-- what `pgcti migrate` compares before and after applying db/logic (and shows in --plan).
SELECT 'FUNCTION', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || coalesce(E'\n-- comment: ' || obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'cti' AND p.prokind = 'f'
UNION ALL
SELECT 'VIEW', c.oid::regclass::text,
       pg_get_viewdef(c.oid, true) || coalesce(E'\n-- comment: ' || obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'cti' AND c.relkind = 'v'
UNION ALL
SELECT 'TRIGGER', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid, true)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'cti' AND NOT t.tgisinternal;

-- name: logic_recorded
SELECT name, checksum, functions FROM cti.logic_file;

-- name: logic_record
INSERT INTO cti.logic_file (name, checksum, functions, applied_at)
VALUES (%s, %s, %s, now())
ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum,
    functions = EXCLUDED.functions, applied_at = EXCLUDED.applied_at;

-- name: as_owner
-- pgcti's objects belong to cti_owner, whoever runs `pgcti migrate`.
SET LOCAL ROLE cti_owner;

-- name: as_myself
RESET ROLE;

-- name: bookkeeping_schema
CREATE SCHEMA IF NOT EXISTS {};

-- name: recompute_reference_crm_numbers
-- After an upgrade that changed cti.normalize_phone: the reference CRM's trigger recomputes.
UPDATE pgcti_refcrm.client_phone SET raw = raw;

-- name: yoyo_applied
-- The versioned migrations yoyo recorded as applied, by id and hash.
SELECT migration_id, migration_hash FROM pgcti_migrations._yoyo_migration;

-- name: yoyo_adopt
-- Replace yoyo's record of an older release's migrations by the baseline that folds them.
WITH gone AS (
    DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_id = ANY(%(old_ids)s)
)
INSERT INTO pgcti_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%(hash)s, %(id)s, now() AT TIME ZONE 'UTC');

-- name: yoyo_mark
-- Record a versioned migration as applied, as yoyo does (the migration ran in our transaction).
WITH logged AS (
    INSERT INTO pgcti_migrations._yoyo_log
           (id, migration_hash, migration_id, operation, username, hostname, created_at_utc)
    VALUES (%(log_id)s, %(hash)s, %(id)s, 'apply', %(username)s, %(hostname)s, now() AT TIME ZONE 'UTC')
)
INSERT INTO pgcti_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%(hash)s, %(id)s, now() AT TIME ZONE 'UTC');

-- name: yoyo_unmark
-- Record a versioned migration as rolled back, as yoyo does (its rollback ran in our transaction).
WITH logged AS (
    INSERT INTO pgcti_migrations._yoyo_log
           (id, migration_hash, migration_id, operation, username, hostname, created_at_utc)
    VALUES (%(log_id)s, %(hash)s, %(id)s, 'rollback', %(username)s, %(hostname)s, now() AT TIME ZONE 'UTC')
)
DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_hash = %(hash)s;

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %s;

-- name: create_database
CREATE DATABASE {};

-- name: drop_database
DROP DATABASE IF EXISTS {} WITH (FORCE);

-- name: migrating_rights
-- What the migrating user may do, for `pgcti migrate`'s check before it starts.
SELECT current_user, current_database(), r.rolsuper, r.rolcreaterole,
       has_database_privilege(current_database(), 'CREATE'),
       o.oid IS NOT NULL AS owner_exists,
       -- Up to PostgreSQL 15, CREATEROLE alone may grant any role that is not a superuser.
       o.oid IS NOT NULL AND (pg_has_role(current_user, o.oid, 'USAGE WITH ADMIN OPTION')
                              OR (r.rolcreaterole AND current_setting('server_version_num')::int < 160000)) AS owner_admin,
       o.oid IS NOT NULL AND pg_has_role(current_user, o.oid, 'MEMBER') AS owner_member,
       EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cti') AS installed
  FROM pg_roles r LEFT JOIN pg_roles o ON o.rolname = 'cti_owner'
 WHERE r.rolname = current_user;

-- name: cti_installed
SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'cti');

-- name: drop_bookkeeping_schema
-- After everything was rolled back: yoyo's tables go too.
DROP SCHEMA IF EXISTS {} CASCADE;

-- name: roles_left
-- pgcti's roles a full rollback kept, and why: logins are members, or another database uses it.
SELECT g.rolname,
       concat_ws('; ',
           'logins ' || m.members || ' are members and keep it for a re-install (DROP ROLE '
               || g.rolname || ' once they are gone)',
           'database(s) ' || d.dbs || ' still use it')
  FROM pg_roles g
  LEFT JOIN LATERAL (
      SELECT string_agg(u.rolname, ', ' ORDER BY u.rolname) AS members
        FROM pg_auth_members am JOIN pg_roles u ON u.oid = am.member
       WHERE am.roleid = g.oid AND u.rolcanlogin AND g.rolname <> 'cti_owner') m ON true
  LEFT JOIN LATERAL (
      SELECT string_agg(DISTINCT db.datname, ', ') AS dbs
        FROM pg_shdepend sd JOIN pg_database db ON db.oid = sd.dbid
       WHERE sd.refobjid = g.oid AND sd.refclassid = 'pg_authid'::regclass) d ON true
 WHERE g.rolname IN ('cti_owner', 'cti_ingester', 'cti_client')
 ORDER BY g.rolname;

-- name: create_option_probe
-- A column nobody gave options to, in a transaction the caller rolls back.
CREATE TEMPORARY TABLE pgcti_option_probe (a text);

-- name: option_probe_options
-- Every option the server put on the probe table and its column by itself.
SELECT unnest(attoptions) FROM pg_catalog.pg_attribute
 WHERE attrelid = 'pg_temp.pgcti_option_probe'::regclass AND attnum > 0
UNION ALL
SELECT unnest(reloptions) FROM pg_catalog.pg_class
 WHERE oid = 'pg_temp.pgcti_option_probe'::regclass;
