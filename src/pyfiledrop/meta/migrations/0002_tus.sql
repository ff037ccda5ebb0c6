-- tus (issue 9): uploads received in order at a byte offset, with a write lock per upload.
ALTER TABLE uploads ADD COLUMN byte_offset INTEGER NOT NULL DEFAULT 0; -- bytes received in order
ALTER TABLE uploads ADD COLUMN metadata TEXT;           -- tus Upload-Metadata, as the client sent it
ALTER TABLE uploads ADD COLUMN content_type TEXT;       -- the client's media type (tus filetype)
ALTER TABLE uploads ADD COLUMN concat TEXT;             -- tus Upload-Concat: partial, or final plus the partials
ALTER TABLE uploads ADD COLUMN lock_owner TEXT;         -- the request writing now (random token)
ALTER TABLE uploads ADD COLUMN lock_until REAL;         -- until when that lock holds unless renewed
ALTER TABLE files ADD COLUMN content_type TEXT
