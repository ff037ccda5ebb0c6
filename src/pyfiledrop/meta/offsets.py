"""Statements for uploads received in order at a byte offset (tus), and their write lock.

The lock is a lease in the upload's row, taken with a conditional UPDATE like `claim_finalize`, so
two requests (in one process or several) can never both write to one upload.
"""

from __future__ import annotations

from pyfiledrop.meta.queries import Connection


def take_lock(
    connection: Connection, upload_id: str, holder: str, offset: int, now: float, lease: float
) -> bool:
    """Become the one writer, if the upload still stands at `offset` and nobody holds a lease."""
    cursor = connection.execute(
        "UPDATE uploads SET lock_owner = ?, lock_until = ?, updated = ?"
        " WHERE id = ? AND state = 'receiving' AND byte_offset = ?"
        " AND (lock_until IS NULL OR lock_until < ?)",
        (holder, now + lease, now, upload_id, offset, now),
    )
    return bool(cursor.rowcount == 1)


def renew_lock(
    connection: Connection, upload_id: str, holder: str, until: float, now: float
) -> None:
    connection.execute(
        "UPDATE uploads SET lock_until = ?, updated = ? WHERE id = ? AND lock_owner = ?",
        (until, now, upload_id, holder),
    )


def release_lock(connection: Connection, upload_id: str, holder: str) -> None:
    connection.execute(
        "UPDATE uploads SET lock_owner = NULL, lock_until = NULL WHERE id = ? AND lock_owner = ?",
        (upload_id, holder),
    )


def advance_offset(
    connection: Connection, upload_id: str, holder: str, start: int, end: int, now: float
) -> bool:
    cursor = connection.execute(
        "UPDATE uploads SET byte_offset = ?, updated = ?"
        " WHERE id = ? AND lock_owner = ? AND byte_offset = ?",
        (end, now, upload_id, holder, start),
    )
    return bool(cursor.rowcount == 1)


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
