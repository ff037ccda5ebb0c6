-- `uploads.final_path` was read on every finalize (as a name taken) but never written since the
-- publish step chose names from `files.path` alone. The same statement runs on SQLite (3.35+,
-- which RETURNING already needs) and on PostgreSQL.
ALTER TABLE uploads DROP COLUMN final_path;
