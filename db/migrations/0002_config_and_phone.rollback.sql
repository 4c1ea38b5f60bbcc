-- Undo 0002.
DROP FUNCTION cti.is_extension(text);
DROP FUNCTION cti.normalize_phone(text);
DROP TABLE cti.config;
