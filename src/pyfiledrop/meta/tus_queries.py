"""Statements for uploads received in order at a byte offset (tus), and their write lock.

The lock is a lease in the upload's row, taken with a conditional UPDATE like `claim_finalize`, so
two requests (in one process or several) can never both write to one upload. The lease is short and
renewed by its holder; a request that finds it held sets `lock_wanted`, which the holder's renewal
reports, so the holder stops and lets go (tusd 2.x's lock release on request).
"""

from __future__ import annotations

from pyfiledrop.meta import Upload, upload_from_row
from pyfiledrop.meta.queries import Connection


def _changed_row(connection: Connection, sql: str, parameters: tuple[object, ...]) -> Upload | None:
    """The row an `UPDATE ... RETURNING *` changed, if any: a write and the read of its result in
    one statement (one trip to the database thread per PATCH step, not two)."""
    rows = connection.execute(
        sql + " RETURNING *", parameters
    ).fetchall()  # all: the statement ends
    return upload_from_row(rows[0]) if rows else None


# The upload still stands at the offset and nobody holds a lease (or it has run out).
_TAKE_LOCK = (
    "UPDATE uploads SET lock_owner = ?, lock_until = ?, lock_wanted = NULL, updated = ?"
    " WHERE id = ? AND state = 'receiving' AND byte_offset = ?"
    " AND (lock_until IS NULL OR lock_until < ?)"
)


def take_lock(
    connection: Connection, upload_id: str, holder: str, offset: int, now: float, lease: float
) -> Upload | None:
    """Become the one writer, if the upload still stands at `offset` and nobody holds a lease;
    the upload as it is then (None: not taken)."""
    return _changed_row(connection, _TAKE_LOCK, (holder, now + lease, now, upload_id, offset, now))


def take_free_lock(
    connection: Connection,
    upload_id: str,
    holder: str,
    offset: int,
    now: float,
    lease: float,
    abandon_after: float,
) -> Upload | None:
    """`take_lock` for the usual PATCH, without reading the upload first: a tus upload that takes
    bytes (not a final concatenation), not expired (as `tus_uploads.find` decides), at `offset`,
    with no lease held. None: any of these is not so (the caller then looks why)."""
    return _changed_row(
        connection,
        _TAKE_LOCK + " AND protocol = 'tus' AND (concat IS NULL OR concat = 'partial')"
        " AND updated + ? >= ?",
        (holder, now + lease, now, upload_id, offset, now, abandon_after, now),
    )


def renew_lock(
    connection: Connection, upload_id: str, holder: str, until: float, now: float
) -> bool:
    """Extend the holder's lease; False when it should stop: another request asked for the lock,
    or the lock is no longer its own (the lease ran out and was taken, or the upload is gone).
    A holder that was asked keeps its lease while it saves what it wrote, then releases."""
    cursor = connection.execute(
        "UPDATE uploads SET lock_until = ?, updated = ? WHERE id = ? AND lock_owner = ?",
        (until, now, upload_id, holder),
    )
    if cursor.rowcount != 1:
        return False
    row = connection.execute("SELECT lock_wanted FROM uploads WHERE id = ?", (upload_id,))
    wanted = row.fetchone()
    return wanted is not None and wanted[0] is None


def want_lock(connection: Connection, upload_id: str, now: float) -> None:
    """Ask whoever holds the upload's lock to save what it wrote and let go."""
    connection.execute(
        "UPDATE uploads SET lock_wanted = ? WHERE id = ? AND lock_owner IS NOT NULL",
        (now, upload_id),
    )


def release_all_locks(connection: Connection) -> int:
    """Free every write lock: for the only server process, at its start (a crash left them)."""
    cursor = connection.execute(
        "UPDATE uploads SET lock_owner = NULL, lock_until = NULL, lock_wanted = NULL"
        " WHERE lock_owner IS NOT NULL"
    )
    return int(cursor.rowcount)


def release_lock(connection: Connection, upload_id: str, holder: str) -> None:
    connection.execute(
        "UPDATE uploads SET lock_owner = NULL, lock_until = NULL, lock_wanted = NULL"
        " WHERE id = ? AND lock_owner = ?",
        (upload_id, holder),
    )


def advance_offset(
    connection: Connection,
    upload_id: str,
    holder: str,
    start: int,
    end: int,
    now: float,
    release: bool = False,
) -> Upload | None:
    """Count the holder's bytes from `start` to `end`, and with `release` let go of the lock in the
    same statement (a write that leaves the upload unfinished); the upload as it is then (None:
    not the holder's, or not at `start`)."""
    unlock = ", lock_owner = NULL, lock_until = NULL, lock_wanted = NULL" if release else ""
    return _changed_row(
        connection,
        f"UPDATE uploads SET byte_offset = ?, updated = ?{unlock}"
        " WHERE id = ? AND lock_owner = ? AND byte_offset = ?",
        (end, now, upload_id, holder, start),
    )


def set_length(connection: Connection, upload_id: str, size: int) -> bool:
    """A deferred length, once known: set once, never changed."""
    cursor = connection.execute(
        "UPDATE uploads SET size = ?, chunk_size = ? WHERE id = ? AND size IS NULL",
        (size, max(size, 1), upload_id),
    )
    return bool(cursor.rowcount == 1)


def set_joined(connection: Connection, upload_id: str, size: int, now: float) -> None:
    connection.execute(
        "UPDATE uploads SET byte_offset = ?, updated = ? WHERE id = ?", (size, now, upload_id)
    )
