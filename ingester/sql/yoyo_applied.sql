-- The versioned migrations yoyo recorded as applied, by id and hash.
SELECT migration_id, migration_hash FROM pgcti_migrations._yoyo_migration
