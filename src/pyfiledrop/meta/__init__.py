"""Metadata: uploads in progress, their chunks, and published files, kept in a database.

The rows are plain dataclasses; the statements live in `queries.py` as plain SQL that SQLite and
PostgreSQL both accept, so a second backend only supplies a connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

SQLITE_FILE = "pyfiledrop.sqlite3"


class Database(Protocol):
    """Runs a function of a connection (one from `queries`) off the event loop."""

    async def run(self, function: Callable[..., T], *args: Any) -> T: ...

    def run_sync(self, function: Callable[..., T], *args: Any) -> T: ...

    def close(self) -> None: ...


# The words stored in `uploads.protocol`: how an upload's bytes arrive. Rows keep these words (no
# migration); read the names. "stream" is any body sent whole in one request, in order from 0.
DROPZONE_CHUNKS = "dropzone"  # Dropzone's chunked uploads: chunk i of n, any order
ONE_SHOT_BODY = "stream"  # a PUT, or a Dropzone upload sent without chunking
TUS_OFFSETS = "tus"  # tus: pieces at the upload's offset, in order


@dataclass(frozen=True)
class Upload:
    id: str
    owner: str
    name: str
    size: int | None
    chunk_size: int
    chunk_count: int
    protocol: str
    state: str
    created: float
    updated: float
    received_count: int = 0  # the `received` column: distinct chunks counted
    lease_until: float | None = None
    file_id: str | None = None
    byte_offset: int = 0  # uploads received in order (tus): the bytes stored so far
    metadata: str | None = None
    content_type: str | None = None
    concat: str | None = None
    lock_owner: str | None = None
    lock_until: float | None = None
    address: str | None = None  # the client's address when the upload began (limits.py)
    expires_in: int | None = None  # the uploader's choice, applied when the file is published
    max_downloads: int | None = None
    lock_wanted: float | None = None  # tus: when another request asked the lock's holder to stop


@dataclass(frozen=True)
class StoredFile:
    id: str
    owner: str
    name: str
    path: str
    size: int
    sha256: str
    created: float
    expires: float | None = None
    downloads: int = 0
    max_downloads: int | None = None
    delete_token: str | None = None
    linked_from: str | None = None
    upload_id: str | None = None
    content_type: str | None = None
    last_download: float | None = None
    gone: str | None = None  # why the file is no longer served (a tombstone), None while it is
    gone_at: float | None = None
    # The sha256 is the hash of the bytes on disk at publish (see migration 0005): a dedup target.
    hash_trusted: bool = False


@dataclass(frozen=True)
class Share:
    """Several files behind one link (`meta/shares.py` keeps them)."""

    id: str
    owner: str
    created: float
    expires: float | None = None
    downloads: int = 0
    max_downloads: int | None = None


def open_database(url: str | None, data: Path) -> Database:
    """SQLite in the data folder by default; a `postgresql://` URL for several processes."""
    if url is None:
        from pyfiledrop.meta.sqlite import SQLiteDatabase

        return SQLiteDatabase(data / SQLITE_FILE)
    from pyfiledrop.meta.postgres import PostgresDatabase

    return PostgresDatabase(url)


def upload_from_row(row: Any) -> Upload:
    fields = dict(row)
    fields["received_count"] = fields.pop("received")
    return Upload(**fields)


def file_from_row(row: Any) -> StoredFile:
    values = dict(row)
    values["hash_trusted"] = bool(values.get("hash_trusted"))
    return StoredFile(**values)
