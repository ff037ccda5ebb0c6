-- One writer per chunk (issue 12): a lease row per chunk being written, taken with one conditional
-- statement by any process, and a lease whose writer died runs out and can be taken over.
CREATE TABLE chunk_writers (
    upload_id TEXT NOT NULL,
    idx       INTEGER NOT NULL,
    writer    TEXT NOT NULL,               -- the request writing it (random token)
    until     REAL NOT NULL,               -- the lease ends then unless its writer renews it
    PRIMARY KEY (upload_id, idx)
);
-- 1 when the recorded sha256 is the hash of the bytes on disk at publish (hashed as they were
-- written, or read back from chunks no one could write again), 0 for files from older versions.
-- Only such files are deduplication targets.
ALTER TABLE files ADD COLUMN hash_trusted INTEGER NOT NULL DEFAULT 0
