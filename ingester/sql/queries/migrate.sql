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
 WHERE g.rolname = ANY (%(roles)s)
 ORDER BY g.rolname;

-- name: roles_unused
-- pgcti's roles that nothing holds: no login is a member, no database depends on them.
SELECT g.rolname FROM pg_roles g
 WHERE g.rolname = ANY (%(roles)s)
   AND NOT EXISTS (SELECT FROM pg_auth_members am JOIN pg_roles u ON u.oid = am.member
                    WHERE am.roleid = g.oid AND u.rolcanlogin)
   AND NOT EXISTS (SELECT FROM pg_shdepend sd
                    WHERE sd.refobjid = g.oid AND sd.refclassid = 'pg_authid'::regclass)
 ORDER BY g.rolname;

-- name: drop_role_if_exists
DROP ROLE IF EXISTS {};

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

-- name: outside_footprint
-- What pgcti has put on objects outside its own schemas: triggers that call its functions,
-- privileges granted to its roles (outside.ROLES), its schemas and its roles. `pgcti
-- migrate` (and --plan) lists what a change adds to or removes from these, for the DBA of
-- the CRM. (Run with parameters: format()'s placeholders are doubled for psycopg.)
SELECT 'trigger', format('%%I ON %%s', t.tgname, t.tgrelid::regclass)
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
  JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
 WHERE pn.nspname = 'cti' AND cn.nspname <> 'cti' AND NOT t.tgisinternal
UNION ALL
SELECT 'grant', format('%%s ON %%s %%s TO %%I',
                       a.privilege_type, CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END,
                       c.oid::regclass, pg_get_userbyid(a.grantee))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL aclexplode(c.relacl) a
 WHERE n.nspname NOT IN ('cti', 'pg_catalog', 'information_schema')
   AND pg_get_userbyid(a.grantee) = ANY (%(roles)s)
UNION ALL
SELECT 'grant', format('%%s ON SCHEMA %%I TO %%I', a.privilege_type, n.nspname, pg_get_userbyid(a.grantee))
  FROM pg_namespace n CROSS JOIN LATERAL aclexplode(n.nspacl) a
 WHERE n.nspname NOT IN ('cti', 'pg_catalog', 'information_schema')
   AND pg_get_userbyid(a.grantee) = ANY (%(roles)s)
UNION ALL
SELECT 'schema', quote_ident(nspname) FROM pg_namespace WHERE nspname IN ('cti', 'pgcti_migrations', 'pgcti_refcrm')
UNION ALL
SELECT 'role', quote_ident(rolname) FROM pg_roles WHERE rolname = ANY (%(roles)s)
ORDER BY 1, 2;

-- name: crm_objects_on_cti
-- Objects outside pgcti's schemas that depend on pgcti's (a CRM view over an analytics
-- view, a foreign key to cti.call, a function body that reads cti): dropping pgcti would
-- drop them too, by cascade. pgcti's own triggers on CRM tables are not among them.
-- Run with search_path = pg_catalog, so that pg_describe_object names every schema.
WITH cti_objects AS (
    SELECT 'pg_class'::regclass AS classid, c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'cti'
    UNION ALL
    SELECT 'pg_proc'::regclass, p.oid FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'cti'
    UNION ALL
    SELECT 'pg_type'::regclass, t.oid FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'cti'
), dependants AS (
    SELECT CASE WHEN d.classid = 'pg_rewrite'::regclass
                THEN pg_describe_object('pg_class'::regclass, r.ev_class, 0)
                ELSE pg_describe_object(d.classid, d.objid, 0) END AS dependant,
           CASE WHEN d.classid = 'pg_rewrite'::regclass
                THEN (SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = r.ev_class)
                ELSE (pg_identify_object(d.classid, d.objid, 0)).schema END AS schema,
           pg_describe_object(d.refclassid, d.refobjid, 0) AS uses
      FROM pg_depend d
      JOIN cti_objects o ON o.classid = d.refclassid AND o.oid = d.refobjid
      LEFT JOIN pg_rewrite r ON d.classid = 'pg_rewrite'::regclass AND r.oid = d.objid
     WHERE d.deptype = 'n' AND d.classid <> 'pg_trigger'::regclass
)
SELECT dependant, max(uses) FROM dependants  -- a foreign key: the table over its index
 WHERE coalesce(schema, '') NOT IN ('cti', 'pgcti_refcrm', 'pgcti_migrations')
 GROUP BY dependant ORDER BY dependant;

-- name: crm_privilege_state
-- One GRANT or REVOKE of a DBA's migration on one object: its owner, whether the migrating
-- user may act as that owner (or the object is not there yet, so the migration makes it),
-- and whether the statement is in effect already (for a GRANT,
-- the grantee holds every privilege; for a REVOKE, it holds none of them directly).
WITH target AS (
    SELECT CASE WHEN %(kind)s = 'SCHEMA' THEN (SELECT nspowner FROM pg_namespace WHERE oid = to_regnamespace(%(object)s))
                ELSE (SELECT relowner FROM pg_class WHERE oid = to_regclass(%(object)s)) END AS owner_oid,
           CASE WHEN %(kind)s = 'SCHEMA' THEN (SELECT nspacl FROM pg_namespace WHERE oid = to_regnamespace(%(object)s))
                ELSE (SELECT relacl FROM pg_class WHERE oid = to_regclass(%(object)s)) END AS acl
)
SELECT pg_get_userbyid(owner_oid),
       owner_oid IS NULL OR pg_has_role(owner_oid, 'USAGE'),  -- not there yet: the migration makes it
       CASE WHEN owner_oid IS NULL OR to_regrole(%(grantee)s) IS NULL THEN false
            WHEN %(grant)s THEN
                (SELECT bool_and(CASE %(kind)s WHEN 'SCHEMA' THEN has_schema_privilege(%(grantee)s, %(object)s, p)
                                               WHEN 'SEQUENCE' THEN has_sequence_privilege(%(grantee)s, %(object)s, p)
                                               ELSE has_table_privilege(%(grantee)s, %(object)s, p) END)
                   FROM unnest(%(privileges)s::text[]) p)
            ELSE NOT EXISTS (SELECT FROM aclexplode(acl) a
                              WHERE a.grantee = to_regrole(%(grantee)s) AND a.privilege_type = ANY(%(privileges)s::text[]))
       END
  FROM target;

-- name: crm_phone_trigger_drops
-- pgcti's triggers on attached CRM tables that the migrating user may not drop (it is not
-- the table's owner): what their owner runs before pgcti or the adapters are rolled back.
SELECT pg_get_userbyid(c.relowner), unnest(cti.phone_source_drop_trigger_sql(s)) || ';'
  FROM cti.phone_source s JOIN pg_class c ON c.oid = s.table_name
 WHERE NOT pg_has_role(c.relowner, 'USAGE')
 ORDER BY s.id;

-- name: pgcti_schemas_exist
SELECT to_regnamespace('pgcti_migrations') IS NOT NULL, to_regnamespace('cti') IS NOT NULL;

-- name: drop_function
-- An adapter whose override changed its result columns, before pgcti's placeholder returns.
DROP FUNCTION {}.{};
