-- tus locks that never strand a client (issue 12): a request that finds an upload locked asks the
-- holder to let go (this column), and the holder's keeper, which looks twice a second, saves what
-- it wrote and releases the lock.
ALTER TABLE uploads ADD COLUMN lock_wanted REAL;        -- when another request asked for the lock
