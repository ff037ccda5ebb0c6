"""Metadata: uploads in progress, their chunks, and published files, kept in a database.

The rows are plain dataclasses; the statements live in `queries.py` as plain SQL that SQLite and
PostgreSQL both accept, so a second backend only supplies a connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
    received: int = 0
    lease_until: float | None = None
    final_path: str | None = None
    file_id: str | None = None


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


def upload_from_row(row: Any) -> Upload:
    return Upload(**dict(row))


def file_from_row(row: Any) -> StoredFile:
    return StoredFile(**dict(row))
