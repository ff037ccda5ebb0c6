"""The statements: plain parameterized SQL, each function one short transaction.

Each function takes a DB-API connection in autocommit mode as its first argument and runs on the
database thread (see `sqlite.SQLiteDatabase.run`).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

from pyfiledrop.meta import StoredFile, Upload, file_from_row, upload_from_row

Connection = Any


@contextlib.contextmanager
def transaction(connection: Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def insert_upload(connection: Connection, upload: Upload) -> Upload:
    """Create the upload unless it exists; either way return the stored row."""
    connection.execute(
        "INSERT INTO uploads (id, owner, name, size, chunk_size, chunk_count, protocol, state,"
        " created, updated, expires_in, max_downloads, byte_offset, metadata, content_type,"
        " concat, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO NOTHING",
        (
            upload.id, upload.owner, upload.name, upload.size, upload.chunk_size,
            upload.chunk_count, upload.protocol, upload.state, upload.created, upload.updated,
            upload.expires_in, upload.max_downloads, upload.byte_offset, upload.metadata,
            upload.content_type, upload.concat, upload.address,
        ),
    )  # fmt: skip
    stored = get_upload(connection, upload.id)
    assert stored is not None
    return stored


def get_upload(connection: Connection, upload_id: str) -> Upload | None:
    row = connection.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    return upload_from_row(row) if row else None


def claim_owner(connection: Connection, upload_id: str, owner: str) -> None:
    """Give an upload begun without a cookie its owner: the first cookie seen for it wins."""
    connection.execute(
        "UPDATE uploads SET owner = ? WHERE id = ? AND owner = ''", (owner, upload_id)
    )


def claim_chunk_writer(
    connection: Connection, upload_id: str, index: int, writer: str, now: float, lease: float
) -> bool:
    """Become the one writer of a chunk: not counted yet, its upload still receiving, and no
    other writer holding an unexpired lease. The claim is one conditional statement, so two
    processes can't both win; the winner also marks the upload active (`updated`)."""
    with transaction(connection):
        cursor = connection.execute(
            "INSERT INTO chunk_writers (upload_id, idx, writer, until)"
            " SELECT ?, ?, ?, ? WHERE NOT EXISTS"
            " (SELECT 1 FROM chunks WHERE upload_id = ? AND idx = ?)"
            " AND EXISTS (SELECT 1 FROM uploads WHERE id = ? AND state = 'receiving')"
            " ON CONFLICT (upload_id, idx) DO UPDATE SET writer = excluded.writer,"
            " until = excluded.until WHERE chunk_writers.until < ?",
            (upload_id, index, writer, now + lease, upload_id, index, upload_id, now),
        )
        if cursor.rowcount != 1:
            return False
        # Under PostgreSQL's READ COMMITTED the NOT EXISTS above may have seen a snapshot from
        # before a writer whose lease had expired counted the chunk (and freed its row, which
        # let this insert through); this statement sees that commit.
        if _counted(connection, upload_id, index):
            connection.execute(
                "DELETE FROM chunk_writers WHERE upload_id = ? AND idx = ? AND writer = ?",
                (upload_id, index, writer),
            )
            return False
        connection.execute("UPDATE uploads SET updated = ? WHERE id = ?", (now, upload_id))
        return True


def _counted(connection: Connection, upload_id: str, index: int) -> bool:
    """Is the chunk counted? Every chunk of an upload past `receiving` is (publishing forgets
    the chunk rows)."""
    row = connection.execute(
        "SELECT 1 FROM chunks WHERE upload_id = ? AND idx = ?"
        " UNION ALL SELECT 1 FROM uploads WHERE id = ? AND state != 'receiving'",
        (upload_id, index, upload_id),
    ).fetchone()
    return row is not None


def renew_chunk_writers(connection: Connection, process: str, now: float, lease: float) -> int:
    """Extend the leases of every chunk one process is writing (writer = "<process>:<token>"),
    and keep their uploads counted as active."""
    mine = f"{process}:%"
    with transaction(connection):
        cursor = connection.execute(
            "UPDATE chunk_writers SET until = ? WHERE writer LIKE ?", (now + lease, mine)
        )
        connection.execute(
            "UPDATE uploads SET updated = ? WHERE id IN"
            " (SELECT upload_id FROM chunk_writers WHERE writer LIKE ?)",
            (now, mine),
        )
    return int(cursor.rowcount)


def chunk_writer_state(
    connection: Connection, upload_id: str, index: int, now: float
) -> tuple[bool, bool]:
    """(is the chunk counted, is a writer holding an unexpired lease on it)."""
    writing = connection.execute(
        "SELECT 1 FROM chunk_writers WHERE upload_id = ? AND idx = ? AND until >= ?",
        (upload_id, index, now),
    ).fetchone()
    return _counted(connection, upload_id, index), writing is not None


def release_chunk_writer(connection: Connection, upload_id: str, index: int, writer: str) -> None:
    connection.execute(
        "DELETE FROM chunk_writers WHERE upload_id = ? AND idx = ? AND writer = ?",
        (upload_id, index, writer),
    )


def release_all_chunk_writers(connection: Connection) -> int:
    """Free every chunk lease: for a process that knows no other writer can be alive."""
    return int(connection.execute("DELETE FROM chunk_writers").rowcount)


def record_written_chunk(
    connection: Connection, upload_id: str, index: int, writer: str, now: float
) -> tuple[bool, int] | None:
    """Count a chunk its lease holder wrote completely, releasing the lease in the same
    transaction: (was it new, distinct chunks in), or None if `writer` no longer held it."""
    with transaction(connection):
        held = connection.execute(
            "DELETE FROM chunk_writers WHERE upload_id = ? AND idx = ? AND writer = ?",
            (upload_id, index, writer),
        ).rowcount
        if held != 1:
            return None
        return _count_chunk(connection, upload_id, index, now)


def record_chunk(
    connection: Connection, upload_id: str, index: int, now: float
) -> tuple[bool, int]:
    """Count a fully written chunk (idempotent): (was it new, how many distinct chunks are in)."""
    with transaction(connection):
        return _count_chunk(connection, upload_id, index, now)


def _count_chunk(
    connection: Connection, upload_id: str, index: int, now: float
) -> tuple[bool, int]:
    inserted = (
        connection.execute(
            "INSERT INTO chunks (upload_id, idx) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (upload_id, index),
        ).rowcount
        == 1
    )
    row = connection.execute(
        "UPDATE uploads SET received = received + ?, updated = ? WHERE id = ? RETURNING received",
        (1 if inserted else 0, now, upload_id),
    ).fetchone()
    return inserted, int(row[0])


def chunk_status(connection: Connection, upload_id: str, index: int) -> tuple[Upload | None, bool]:
    """The upload and whether it already has this chunk, in one statement."""
    row = connection.execute(
        "SELECT uploads.*, EXISTS (SELECT 1 FROM chunks WHERE upload_id = ? AND idx = ?)"
        " AS counted FROM uploads WHERE id = ?",
        (upload_id, index, upload_id),
    ).fetchone()
    if row is None:
        return None, False
    values = dict(row)
    counted = bool(values.pop("counted"))
    return upload_from_row(values), counted


def start_chunk(
    connection: Connection,
    upload_id: str,
    index: int,
    shape: tuple[int, int, int],
    owner: str,
    writer: str,
    now: float,
    lease: float,
    active_since: float,
) -> tuple[Upload | None, bool, bool]:
    """A chunk's start in one trip to the database thread: (the upload, is the chunk counted
    already, did `writer` become its one writer). An ownerless upload gets `owner` (as
    `claim_owner`). The writer is claimed only on the plain path: the upload exists with this
    `shape` (size, chunk size, chunk count), is receiving and active since `active_since`, and
    the chunk is not counted; else the caller sorts it out (admission, conflict, readmission)
    and claims with `claim_chunk_writer`."""
    upload, counted = chunk_status(connection, upload_id, index)
    if upload is None or (upload.size, upload.chunk_size, upload.chunk_count) != shape:
        return upload, counted, False
    if owner and not upload.owner:
        claim_owner(connection, upload_id, owner)
        upload = get_upload(connection, upload_id) or upload
    if counted or upload.state != "receiving" or upload.updated < active_since:
        return upload, counted, False
    claimed = claim_chunk_writer(connection, upload_id, index, writer, now, lease)
    return upload, False, claimed


def received_chunks(connection: Connection, upload_id: str) -> list[int]:
    rows = connection.execute(
        "SELECT idx FROM chunks WHERE upload_id = ? ORDER BY idx", (upload_id,)
    ).fetchall()
    return [int(row[0]) for row in rows]


def touch_upload(connection: Connection, upload_id: str, now: float) -> None:
    connection.execute("UPDATE uploads SET updated = ? WHERE id = ?", (now, upload_id))


def claim_finalize(connection: Connection, upload_id: str, now: float, lease: float) -> bool:
    """Become the one finisher of a complete upload: from `receiving`, or from a `finalizing`
    whose lease ran out (its finisher died)."""
    cursor = connection.execute(
        "UPDATE uploads SET state = 'finalizing', lease_until = ?, updated = ?"
        " WHERE id = ? AND received = chunk_count"
        " AND (state = 'receiving' OR (state = 'finalizing' AND lease_until < ?))",
        (now + lease, now, upload_id, now),
    )
    return bool(cursor.rowcount == 1)


def extend_lease(connection: Connection, upload_id: str, until: float) -> None:
    connection.execute(
        "UPDATE uploads SET lease_until = ? WHERE id = ? AND state = 'finalizing'",
        (until, upload_id),
    )


def release_finalize(connection: Connection, upload_id: str, now: float) -> None:
    """Give a failed finalize back, so the upload can be completed later."""
    connection.execute(
        "UPDATE uploads SET state = 'receiving', lease_until = NULL, updated = ?"
        " WHERE id = ? AND state = 'finalizing'",
        (now, upload_id),
    )


def release_all_finalizing(connection: Connection, now: float) -> int:
    """Free every finalize lease: for a process that knows no other finisher can be alive."""
    cursor = connection.execute(
        "UPDATE uploads SET state = 'receiving', lease_until = NULL, updated = ?"
        " WHERE state = 'finalizing'",
        (now,),
    )
    return int(cursor.rowcount)


def set_stream_size(connection: Connection, upload_id: str, size: int) -> None:
    """A one-shot upload's size, known when its stream ends; it is one chunk of that size."""
    connection.execute(
        "UPDATE uploads SET size = ?, chunk_size = ? WHERE id = ?", (size, max(size, 1), upload_id)
    )


def publish(connection: Connection, stored: StoredFile, upload_id: str, now: float) -> None:
    with transaction(connection):
        connection.execute(
            "INSERT INTO files (id, owner, name, path, size, sha256, created, expires, downloads,"
            " max_downloads, delete_token, linked_from, upload_id, content_type, hash_trusted)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                stored.id, stored.owner, stored.name, stored.path, stored.size, stored.sha256,
                stored.created, stored.expires, stored.downloads, stored.max_downloads,
                stored.delete_token, stored.linked_from, stored.upload_id, stored.content_type,
                1 if stored.hash_trusted else 0,
            ),
        )  # fmt: skip
        connection.execute(
            "UPDATE uploads SET state = 'done', file_id = ?, lease_until = NULL, updated = ?"
            " WHERE id = ?",
            (stored.id, now, upload_id),
        )
        connection.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))


def delete_upload(connection: Connection, upload_id: str) -> None:
    with transaction(connection):
        connection.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))
        connection.execute("DELETE FROM uploads WHERE id = ?", (upload_id,))


def idle_uploads(connection: Connection, idle_since: float) -> list[Upload]:
    rows = connection.execute(
        "SELECT * FROM uploads WHERE state != 'done' AND updated < ?", (idle_since,)
    ).fetchall()
    return [upload_from_row(row) for row in rows]


def old_done_uploads(connection: Connection, before: float) -> int:
    cursor = connection.execute(
        "DELETE FROM uploads WHERE state = 'done' AND updated < ?", (before,)
    )
    return int(cursor.rowcount)


def get_file(connection: Connection, file_id: str) -> StoredFile | None:
    row = connection.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()
    return file_from_row(row) if row else None


def files_of_owner(connection: Connection, owner: str) -> list[StoredFile]:
    rows = connection.execute(
        "SELECT * FROM files WHERE owner = ? AND gone IS NULL ORDER BY created DESC, id",
        (owner,),
    ).fetchall()
    return [file_from_row(row) for row in rows]


def all_files(connection: Connection) -> list[StoredFile]:
    rows = connection.execute(
        "SELECT * FROM files WHERE gone IS NULL ORDER BY created DESC, id"
    ).fetchall()
    return [file_from_row(row) for row in rows]


def file_with_content(connection: Connection, sha256: str, size: int) -> StoredFile | None:
    """An earlier file with these bytes, for deduplication: only one whose recorded hash is the
    hash of its bytes on disk (`hash_trusted`), else a poisoned file could be a target."""
    row = connection.execute(
        "SELECT * FROM files WHERE sha256 = ? AND size = ? AND gone IS NULL AND hash_trusted = 1"
        " ORDER BY created LIMIT 1",
        (sha256, size),
    ).fetchone()
    return file_from_row(row) if row else None


def paths_in_use(connection: Connection) -> set[str]:
    """Every published name, tombstones' too (their names stay reserved while links live)."""
    rows = connection.execute("SELECT path FROM files").fetchall()
    return {row[0] for row in rows}


def storage_stats(connection: Connection) -> dict[str, int]:
    row = connection.execute(
        "SELECT count(*), coalesce(sum(size), 0),"
        " coalesce(sum(CASE WHEN linked_from IS NOT NULL THEN size ELSE 0 END), 0),"
        " coalesce(sum(CASE WHEN linked_from IS NOT NULL THEN 1 ELSE 0 END), 0) FROM files"
        " WHERE gone IS NULL"
    ).fetchone()
    uploads = connection.execute(
        "SELECT count(*), coalesce(sum(size), 0) FROM uploads WHERE state != 'done'"
    ).fetchone()
    return {
        "files": int(row[0]),
        "bytes": int(row[1]),
        "bytes_saved_by_dedup": int(row[2]),
        "deduplicated_files": int(row[3]),
        "uploads_in_progress": int(uploads[0]),
        "bytes_reserved_by_uploads": int(uploads[1]),
    }


# --- lifecycle: secrets, tombstones, download counting, usage ---------------------------------


def server_secret(connection: Connection, name: str) -> str:
    """A random secret shared by every server process on this database, made on first use."""
    connection.execute(
        "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, secrets.token_hex(32)),
    )
    row = connection.execute("SELECT value FROM server_secrets WHERE name = ?", (name,)).fetchone()
    return str(row[0])


def mark_gone(connection: Connection, file_id: str, reason: str, now: float) -> bool:
    """Turn a served file into a tombstone; True only for the one caller that did it."""
    cursor = connection.execute(
        "UPDATE files SET gone = ?, gone_at = ? WHERE id = ? AND gone IS NULL",
        (reason, now, file_id),
    )
    return bool(cursor.rowcount == 1)


def take_download(connection: Connection, file_id: str, now: float) -> bool:
    """Count one download if the file's limit allows another; False when it is used up."""
    cursor = connection.execute(
        "UPDATE files SET downloads = downloads + 1, last_download = ?"
        " WHERE id = ? AND gone IS NULL AND (max_downloads IS NULL OR downloads < max_downloads)",
        (now, file_id),
    )
    return bool(cursor.rowcount == 1)


def expired_files(connection: Connection, now: float) -> list[StoredFile]:
    rows = connection.execute(
        "SELECT * FROM files WHERE gone IS NULL AND expires IS NOT NULL AND expires <= ?", (now,)
    ).fetchall()
    return [file_from_row(row) for row in rows]


def used_up_files(connection: Connection, last_download_before: float) -> list[StoredFile]:
    """Files at their download limit whose last download can no longer be resumed."""
    rows = connection.execute(
        "SELECT * FROM files WHERE gone IS NULL AND max_downloads IS NOT NULL"
        " AND downloads >= max_downloads AND coalesce(last_download, 0) < ?",
        (last_download_before,),
    ).fetchall()
    return [file_from_row(row) for row in rows]


def live_files(connection: Connection) -> list[StoredFile]:
    rows = connection.execute("SELECT * FROM files WHERE gone IS NULL").fetchall()
    return [file_from_row(row) for row in rows]


def all_files_and_tombstones(connection: Connection) -> list[StoredFile]:
    rows = connection.execute("SELECT * FROM files ORDER BY created DESC, id").fetchall()
    return [file_from_row(row) for row in rows]


def prune_tombstones(connection: Connection, gone_before: float) -> int:
    cursor = connection.execute(
        "DELETE FROM files WHERE gone IS NOT NULL AND gone_at < ?", (gone_before,)
    )
    return int(cursor.rowcount)


# What an upload in progress counts: all of its size while it is active (a chunk arrived or is
# being written within the idle window), only what it has written once idle; see guard.py.
_UPLOAD_CLAIM = (
    "CASE WHEN updated >= ? THEN coalesce(size, 0)"
    " WHEN received * chunk_size + byte_offset < coalesce(size, 0)"
    " THEN received * chunk_size + byte_offset ELSE coalesce(size, 0) END"
)


def bytes_in_use(
    connection: Connection, owner: str | None, active_since: float = 0.0, exclude: str = ""
) -> int:
    """Bytes of served files plus uploads in progress (see _UPLOAD_CLAIM), of one owner or all;
    `exclude`: an upload being admitted again, whose own bytes the caller adds."""
    where, args = ("AND owner = ?", (owner,)) if owner is not None else ("", ())
    files = connection.execute(
        f"SELECT coalesce(sum(size), 0) FROM files WHERE gone IS NULL {where}", args
    ).fetchone()
    uploads = connection.execute(
        f"SELECT coalesce(sum({_UPLOAD_CLAIM}), 0) FROM uploads"
        f" WHERE state != 'done' AND id != ? {where}",
        (active_since, exclude, *args),
    ).fetchone()
    return int(files[0]) + int(uploads[0])


def bytes_receiving(connection: Connection, active_since: float = 0.0, exclude: str = "") -> int:
    """The full size of the uploads in progress that are active (an upper bound of what they
    still take from the free space)."""
    row = connection.execute(
        "SELECT coalesce(sum(size), 0) FROM uploads WHERE state != 'done' AND updated >= ?"
        " AND id != ?",
        (active_since, exclude),
    ).fetchone()
    return int(row[0])


def receiving_uploads(connection: Connection) -> list[Upload]:
    rows = connection.execute("SELECT * FROM uploads WHERE state != 'done'").fetchall()
    return [upload_from_row(row) for row in rows]


def active_uploads(connection: Connection, active_since: float, exclude: str = "") -> list[Upload]:
    rows = connection.execute(
        "SELECT * FROM uploads WHERE state != 'done' AND updated >= ? AND id != ?",
        (active_since, exclude),
    ).fetchall()
    return [upload_from_row(row) for row in rows]


def health_check(connection: Connection, now: float) -> None:
    """A read and a write, as uploads need them; raises when the database can't do either."""
    # A row of each table every upload touches, through its key: the index and the table's root
    # (a whole-file integrity check would cost too much for a probe polled every few seconds).
    for table in ("files", "uploads"):
        connection.execute(f"SELECT * FROM {table} ORDER BY id LIMIT 1").fetchall()
    with transaction(connection):
        connection.execute(
            "INSERT INTO health (id, checked) VALUES (1, ?)"
            " ON CONFLICT (id) DO UPDATE SET checked = excluded.checked",
            (now,),
        )


def uploads_in_progress(connection: Connection, column: str, value: str) -> int:
    """Unfinished uploads of one owner or one client address."""
    assert column in ("owner", "address")  # a column name, never a client's string
    row = connection.execute(
        f"SELECT count(*) FROM uploads WHERE {column} = ? AND state != 'done'", (value,)
    ).fetchone()
    return int(row[0])
