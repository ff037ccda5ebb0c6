-- Hostile input (issue 14): `/healthz` proves the database takes a write, on one row of its own.
CREATE TABLE health (
    id      INTEGER PRIMARY KEY,
    checked REAL NOT NULL                               -- when /healthz last wrote here
)
