-- Uploads in progress (and their outcome), the chunks each has received, and published files.
CREATE TABLE uploads (
    id          TEXT PRIMARY KEY,          -- canonical UUID (the client's dzuuid, or ours)
    owner       TEXT NOT NULL,             -- hash of the owner's secret
    name        TEXT NOT NULL,             -- sanitized original name
    size        INTEGER,                   -- NULL while unknown (streamed one-shot uploads)
    chunk_size  INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    received    INTEGER NOT NULL DEFAULT 0,  -- distinct chunks counted (rows in `chunks`)
    protocol    TEXT NOT NULL,             -- dropzone | put | tus
    state       TEXT NOT NULL,             -- receiving | finalizing | done
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    lease_until REAL,                      -- while finalizing: until when the finisher owns it
    final_path  TEXT,                      -- chosen before the atomic link, so a retry can see it
    file_id     TEXT
);
CREATE INDEX uploads_state_updated ON uploads (state, updated);

CREATE TABLE chunks (
    upload_id TEXT NOT NULL REFERENCES uploads (id) ON DELETE CASCADE,
    idx       INTEGER NOT NULL,
    PRIMARY KEY (upload_id, idx)
);

CREATE TABLE files (
    id            TEXT PRIMARY KEY,        -- public id: 144 random bits, url-safe
    owner         TEXT NOT NULL,
    name          TEXT NOT NULL,           -- the name shown and sent in Content-Disposition
    path          TEXT NOT NULL,           -- relative to the storage folder
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    created       REAL NOT NULL,
    expires       REAL,
    downloads     INTEGER NOT NULL DEFAULT 0,
    max_downloads INTEGER,
    delete_token  TEXT,                    -- hash of the token returned at upload
    linked_from   TEXT,                    -- dedup: id of the file whose bytes this shares
    upload_id     TEXT
);
CREATE INDEX files_owner_created ON files (owner, created);
CREATE INDEX files_content ON files (sha256, size);
