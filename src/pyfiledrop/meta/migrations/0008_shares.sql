-- Shares: the files of one drop behind one link, and download passwords (for a file or a share).
CREATE TABLE shares (
    id            TEXT PRIMARY KEY,            -- public id: 128 random bits, url-safe
    owner         TEXT NOT NULL,
    created       REAL NOT NULL,
    expires       REAL,                        -- NULL: as long as its files are served
    downloads     INTEGER NOT NULL DEFAULT 0,  -- counted per "download all" or file fetched
    max_downloads INTEGER
);
CREATE INDEX shares_owner ON shares (owner);
CREATE TABLE share_files (
    share_id TEXT NOT NULL REFERENCES shares (id) ON DELETE CASCADE,
    file_id  TEXT NOT NULL,
    position INTEGER NOT NULL,                 -- the order they were dropped in
    PRIMARY KEY (share_id, file_id)
);
CREATE TABLE download_passwords (
    target TEXT PRIMARY KEY,                   -- a file's or a share's public id
    secret TEXT NOT NULL                       -- scrypt, as scrypt$<salt hex>$<hash hex>
);
