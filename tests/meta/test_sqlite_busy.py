"""SQLite busy or locked: another connection holds the write lock while chunks arrive; they wait
(busy_timeout) or are retried, and none is lost."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import pyfiledrop.meta.sqlite as sqlite_meta
from tests.conftest import Server, random_file, sha256_of
from tests.dz import send_chunk
from tests.harness import app_client

KiB = 1024
CHUNK = 256 * KiB
LOCK_SECONDS = 3.0


@contextlib.contextmanager
def write_lock(db_path: Path) -> Iterator[None]:
    """BEGIN IMMEDIATE from another connection: every other writer must wait until it ends."""
    connection = sqlite3.connect(db_path, isolation_level=None, timeout=10, check_same_thread=False)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def test_chunks_wait_for_a_held_write_lock(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "busy.bin", 8 * CHUNK + 17)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert send_chunk(client, source, upload_id, 0, CHUNK).status_code == 200
        with ThreadPoolExecutor(4) as pool:
            with write_lock(server.data_dir / "pyfiledrop.sqlite3"):
                started = time.monotonic()
                futures = [
                    pool.submit(send_chunk, client, source, upload_id, index, CHUNK)
                    for index in range(1, 9)
                ]
                # The behaviour under test: a writer outside holds the lock this long.
                time.sleep(LOCK_SECONDS)
                assert not any(f.done() for f in futures), "a chunk was counted under the lock"
            responses = [f.result() for f in futures]
            waited = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 8, [r.text for r in responses]
    done = [r.json() for r in responses if r.json()["status"] == "done"]
    assert len(done) == 1
    assert waited >= LOCK_SECONDS
    assert done[0]["file"]["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "busy.bin") == sha256_of(source)
    assert server.health()["chunks_counted"] == 9  # /healthz writes too: the lock is gone


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy timeout of 0.2 s, so "database is locked" escapes it and the retries are seen."""
    monkeypatch.setattr(sqlite_meta, "BUSY_TIMEOUT_MS", 200)


@pytest.mark.usefixtures("short_busy_timeout")
def test_locked_database_is_retried_not_lost(tmp_path: Path) -> None:
    source = random_file(tmp_path / "locked.bin", 2 * CHUNK)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app") as client:
        client.get("/healthz")
        assert send_chunk(client, source, upload_id, 0, CHUNK).status_code == 200
        lock = write_lock(tmp_path / "app" / "data" / "pyfiledrop.sqlite3")
        lock.__enter__()
        threading.Timer(0.6, lock.__exit__, (None, None, None)).start()
        last = send_chunk(client, source, upload_id, 1, CHUNK)  # outlives one busy timeout
    assert last.status_code == 200, last.text
    assert last.json()["file"]["sha256"] == sha256_of(source)


@pytest.mark.usefixtures("short_busy_timeout")
def test_lock_held_beyond_every_retry_is_503_and_the_chunk_can_be_resent(tmp_path: Path) -> None:
    source = random_file(tmp_path / "long.bin", 2 * CHUNK)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app") as client:
        client.get("/healthz")
        assert send_chunk(client, source, upload_id, 0, CHUNK).status_code == 200
        with write_lock(tmp_path / "app" / "data" / "pyfiledrop.sqlite3"):
            refused = send_chunk(client, source, upload_id, 1, CHUNK)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]
        assert client.get(f"/upload/{upload_id}").json()["received"] == [0]
        last = send_chunk(client, source, upload_id, 1, CHUNK)
    assert last.json()["status"] == "done", last.text
    assert last.json()["file"]["sha256"] == sha256_of(source)
