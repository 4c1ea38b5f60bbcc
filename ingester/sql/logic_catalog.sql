-- Every function, view and trigger in pgcti's schemas with its definition and comment:
-- what `pgcti migrate` compares before and after applying db/logic (and shows in --plan).
SELECT 'FUNCTION', p.oid::regprocedure::text,
       pg_get_functiondef(p.oid) || coalesce(E'\n-- comment: ' || obj_description(p.oid, 'pg_proc'), '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('cti', 'crm') AND p.prokind = 'f'
UNION ALL
SELECT 'VIEW', c.oid::regclass::text,
       pg_get_viewdef(c.oid, true) || coalesce(E'\n-- comment: ' || obj_description(c.oid, 'pg_class'), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('cti', 'crm') AND c.relkind = 'v'
UNION ALL
SELECT 'TRIGGER', t.tgrelid::regclass::text || '.' || t.tgname, pg_get_triggerdef(t.oid, true)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('cti', 'crm') AND NOT t.tgisinternal
