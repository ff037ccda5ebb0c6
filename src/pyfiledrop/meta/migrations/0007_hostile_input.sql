-- Hostile input (issue 14).
-- `/healthz` proves the database takes a write, on one row of its own.
CREATE TABLE health (
    id      INTEGER PRIMARY KEY,
    checked REAL NOT NULL                               -- when /healthz last wrote here
);
-- Caps on uploads in progress per owner and per client address (pyfiledrop/limits.py).
ALTER TABLE uploads ADD COLUMN address TEXT;            -- the client address that began it
CREATE INDEX uploads_owner_state ON uploads (owner, state);
CREATE INDEX uploads_address_state ON uploads (address, state);
