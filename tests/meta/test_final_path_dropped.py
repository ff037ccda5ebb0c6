"""Migration 0010: `uploads.final_path` (never written) goes; a data folder from before it keeps
its uploads in progress and its published names."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pyfiledrop.meta import SQLITE_FILE, StoredFile, open_database, queries, sqlite

BEFORE = 10


def _columns(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[1] for row in connection.execute("PRAGMA table_info(uploads)")}


def test_a_database_from_before_migration_0010_loses_the_column_and_keeps_its_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = sqlite.migration_scripts()
    assert BEFORE in [version for version, _ in every]
    with monkeypatch.context() as patched:
        patched.setattr(sqlite, "migration_scripts", lambda: [m for m in every if m[0] < BEFORE])
        sqlite.connect(tmp_path / SQLITE_FILE).close()
    path = tmp_path / SQLITE_FILE
    assert "final_path" in _columns(path)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO uploads (id, owner, name, size, chunk_size, chunk_count, protocol, state,"
            " created, updated, final_path) VALUES ('u1', 'o', 'a.bin', 10, 10, 1, 'dropzone',"
            " 'receiving', 1.0, 1.0, 'a.bin')"
        )

    db = open_database(None, tmp_path)  # applies 0010
    try:
        assert "final_path" not in _columns(path)
        upload = db.run_sync(queries.get_upload, "u1")
        assert upload is not None and upload.name == "a.bin"
        published = StoredFile(
            id="f" * 24, owner="o", name="b.bin", path="b.bin", size=1, sha256="0" * 64,
            created=2.0,
        )  # fmt: skip
        db.run_sync(queries.publish, published, "u1", 3.0)
        assert db.run_sync(queries.paths_in_use) == {"b.bin"}
    finally:
        db.close()
