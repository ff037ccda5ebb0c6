"""A database held locked from outside, or damaged: bounded waits, then 503 with Retry-After;
`/healthz` checks the database (a read and a write) and the storage folder."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import pyfiledrop.meta.sqlite as sqlite_meta
from pyfiledrop.meta import SQLITE_FILE
from tests.harness import app_client
from tests.meta.test_sqlite_busy import write_lock
from tests.security.test_slow_clients import threaded_server


def test_a_database_locked_from_outside_is_503_with_retry_after_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_meta, "BUSY_TIMEOUT_MS", 300)
    monkeypatch.setattr(sqlite_meta, "DB_WAIT_SECONDS", 1.0, raising=False)
    with app_client(tmp_path) as client:
        assert client.put("/put/before.bin", content=b"x").status_code == 201
        with write_lock(tmp_path / "data" / SQLITE_FILE):
            started = time.monotonic()
            refused = client.put("/put/a.bin", content=b"data")
            elapsed = time.monotonic() - started
            health = client.get("/healthz")
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert elapsed < 1.5
        assert health.status_code == 503 and health.json()["failing"] == ["database"]
        assert health.headers["retry-after"].isdigit()
        assert client.put("/put/a.bin", content=b"data").status_code == 201
        assert client.get("/healthz").status_code == 200


def damage_files_table(db: Path) -> None:
    with sqlite3.connect(db) as connection:
        (page,) = connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'files'")
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    with db.open("r+b") as handle:
        handle.seek((page[0] - 1) * page_size)
        handle.write(b"\xff" * page_size)


def test_a_damaged_database_is_503_and_healthz_says_so(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        assert client.put("/put/a.bin", content=b"x").status_code == 201
    damage_files_table(tmp_path / "data" / SQLITE_FILE)
    with app_client(tmp_path) as client:
        health = client.get("/healthz")
        assert health.status_code == 503, health.text
        assert health.json()["failing"] == ["database"]
        refused = client.put("/put/b.bin", content=b"y")
        assert refused.status_code == 503, refused.text
        assert "damaged" in refused.json()["error"]


def test_healthz_fails_when_storage_is_gone(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        assert client.get("/healthz").status_code == 200
        (tmp_path / "storage").rename(tmp_path / "moved")
        health = client.get("/healthz")
    assert health.status_code == 503 and health.json()["failing"] == ["storage"]


def test_healthz_counters_are_not_public_under_a_password(tmp_path: Path) -> None:
    with app_client(tmp_path, password="correct horse battery") as client:
        health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}


def test_requests_queued_behind_a_lock_are_bounded_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One database thread: without a bound from submission, the n-th queued request waited n
    busy timeouts."""
    monkeypatch.setattr(sqlite_meta, "BUSY_TIMEOUT_MS", 600)
    monkeypatch.setattr(sqlite_meta, "DB_WAIT_SECONDS", 1.0, raising=False)
    with threaded_server(tmp_path) as port:
        url = f"http://127.0.0.1:{port}"
        with write_lock(tmp_path / "data" / SQLITE_FILE):

            def put(number: int) -> tuple[int, float]:
                started = time.monotonic()
                answer = httpx.put(f"{url}/put/q{number}.bin", content=b"q", timeout=30)
                return answer.status_code, time.monotonic() - started

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(put, range(8)))
    assert [status for status, _ in results] == [503] * 8
    # The first waits its busy timeout; the rest, which reach the database one after another,
    # give up quickly instead of waiting one busy timeout each (8 x 0.6 s before).
    assert max(seconds for _, seconds in results) < 3, results
