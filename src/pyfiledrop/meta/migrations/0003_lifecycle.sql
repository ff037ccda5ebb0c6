-- Lifecycle: what the uploader chose for the file (kept on the upload until it is published),
-- and tombstones, so a link to a file that expired, was deleted or vanished says 410, not 404.
ALTER TABLE uploads ADD COLUMN expires_in INTEGER;      -- seconds the uploader asked the file to live
ALTER TABLE uploads ADD COLUMN max_downloads INTEGER;
ALTER TABLE files ADD COLUMN last_download REAL;        -- when a download from byte 0 last counted
ALTER TABLE files ADD COLUMN gone TEXT;                 -- NULL while served, else why it is gone
ALTER TABLE files ADD COLUMN gone_at REAL;
CREATE INDEX files_gone_expires ON files (gone, expires);
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,                             -- e.g. key: derives delete tokens, sessions
    value TEXT NOT NULL
);
