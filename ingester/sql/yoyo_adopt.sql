-- Replace yoyo's record of an older release's migrations by the baseline that folds them.
WITH gone AS (
    DELETE FROM pgcti_migrations._yoyo_migration WHERE migration_id = ANY(%(old_ids)s)
)
INSERT INTO pgcti_migrations._yoyo_migration (migration_hash, migration_id, applied_at_utc)
VALUES (%(hash)s, %(id)s, now() AT TIME ZONE 'UTC')
