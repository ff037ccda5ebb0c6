"""Offset uploads (tus) in the core, in-process with a controllable clock and storage."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from pyfiledrop import tus_uploads
from pyfiledrop.config import Settings
from pyfiledrop.errors import NoSpace
from pyfiledrop.meta import queries, tus_queries
from pyfiledrop.meta.sqlite import SQLiteDatabase
from pyfiledrop.protocols import tus
from pyfiledrop.protocols.body import ChunkFeeder
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.app import create_app
from tests.test_uploads import FakeClock

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


class FlakyStorage(LocalStorage):
    """Local disk whose first `publish` fails as a full disk would."""

    failures = 1

    async def publish(self, upload_id: str, name: str, taken: set[str]) -> str:
        if self.failures:
            self.failures -= 1
            raise NoSpace("the server's disk is full; try again later")
        return await super().publish(upload_id, name, taken)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[tuple[TestClient, Uploads, FakeClock]]:
    settings = Settings(
        storage=tmp_path / "storage",
        chunks=tmp_path / "chunks",
        data=tmp_path / "data",
        abandon_after=3600,
    )
    for folder in (settings.storage, settings.chunks, settings.data):
        folder.mkdir()
    clock = FakeClock()
    # The real time: the janitor's orphan sweep compares file times with this clock.
    clock.now = time.time()
    storage = FlakyStorage(settings.storage, settings.chunks)
    uploads = Uploads(settings, SQLiteDatabase(settings.db_path), storage, clock=clock)
    with TestClient(create_app(settings, uploads=uploads)) as client:
        yield client, uploads, clock
    storage.close()
    uploads.db.close()


def create(client: TestClient, size: int) -> str:
    response = client.post("/files/", headers={**TUS, "Upload-Length": str(size)})
    assert response.status_code == 201
    return str(response.headers["location"])


def patch(client: TestClient, url: str, offset: int, data: bytes) -> int:
    response = client.patch(url, content=data, headers={**OCTETS, "Upload-Offset": str(offset)})
    return response.status_code


def test_a_failed_finish_is_retried_when_the_client_asks_the_offset(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, _, _ = core
    url = create(client, 6)
    assert patch(client, url, 0, b"abcdef") == 507
    head = client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == "6"
    assert head.headers["x-pyfiledrop-sha256"] == hashlib.sha256(b"abcdef").hexdigest()


def test_hash_is_caught_up_from_the_file_after_a_restart(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, _ = core
    storage = uploads.storage
    assert isinstance(storage, FlakyStorage)
    storage.failures = 0
    data = bytes(range(256)) * 5000
    url = create(client, len(data))
    assert patch(client, url, 0, data[:300_000]) == 204
    upload_id = url.rsplit("/", 1)[-1]
    uploads.forget_hash(upload_id)  # as a new process (or another worker) would start
    assert patch(client, url, 300_000, data[300_000:900_000]) == 204
    # The answer does not wait for the write's hash to be adopted (hash_lane.py).
    client.portal.call(uploads.hash_settled, upload_id)  # type: ignore[union-attr]
    progress = uploads.hash_progress(upload_id)
    assert progress.position == 900_000  # read back 300 000, then hashed inline
    response = client.patch(
        url, content=data[900_000:], headers={**OCTETS, "Upload-Offset": "900000"}
    )
    assert response.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()


def test_a_hash_lane_that_took_bytes_which_did_not_count_is_not_continued(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    """A write that failed leaves bytes in the upload's hash lane that don't count; a write with
    a checksum (hashed without the lane) then counts as many other bytes, so the next write's
    offset is where the lane stands: it must start from the file's hash, not go on from them."""
    client, uploads, _ = core
    assert isinstance(uploads.storage, FlakyStorage)
    uploads.storage.failures = 0
    mib = 1024 * 1024
    data = os.urandom(1000 + 2 * mib + 500)
    url = create(client, len(data))
    assert patch(client, url, 0, data[:1000]) == 204

    async def failed_write() -> None:
        write = await tus_uploads.begin_write(uploads, url.rsplit("/", 1)[-1], 1000, None, None)
        feeder = ChunkFeeder(write.plan)

        async def pieces() -> AsyncIterator[bytes]:
            yield b"\xff" * mib
            yield b"\xff" * mib
            raise OSError("as a store failing under the write")

        with pytest.raises(OSError):
            await tus_uploads.receive(write, feeder, pieces())
        await tus_uploads.end_write(uploads, write, feeder, failed=True)

    client.portal.call(failed_write)  # type: ignore[union-attr]
    middle = data[1000 : 1000 + 2 * mib]
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(middle).digest()).decode()
    response = client.patch(
        url,
        content=middle,
        headers={**OCTETS, "Upload-Offset": "1000", "Upload-Checksum": checksum},
    )
    assert (response.status_code, response.headers["upload-offset"]) == (204, str(1000 + 2 * mib))
    response = client.patch(
        url,
        content=data[1000 + 2 * mib :],
        headers={**OCTETS, "Upload-Offset": str(1000 + 2 * mib)},
    )
    assert response.status_code == 204, response.text
    assert response.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()


def test_expiry_410_and_the_janitor_spares_a_locked_upload(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, clock = core
    url = create(client, 10)
    assert patch(client, url, 0, b"12345") == 204
    upload_id = url.rsplit("/", 1)[-1]
    clock.now += 4000  # idle past abandon_after, but a writer holds the lock
    uploads.db.run_sync(
        lambda c: c.execute(
            "UPDATE uploads SET lock_until = ? WHERE id = ?", (clock.now + 30, upload_id)
        )
    )
    client.portal.call(uploads.remove_abandoned)  # type: ignore[union-attr]
    assert uploads.db.run_sync(queries.get_upload, upload_id) is not None
    clock.now += 100  # the lock ran out too
    assert client.head(url, headers=TUS).status_code == 410
    assert client.head(url, headers=TUS).status_code == 404


def test_a_patch_to_an_expired_upload_is_410_and_writes_nothing(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, clock = core
    url = create(client, 10)
    assert patch(client, url, 0, b"12345") == 204
    clock.now += 3601  # idle past abandon_after (3600), no lock held
    assert patch(client, url, 5, b"67890") == 410
    assert uploads.db.run_sync(queries.get_upload, url.rsplit("/", 1)[-1]) is None


def test_a_patch_in_the_middle_of_an_upload_makes_two_database_calls(
    core: tuple[TestClient, Uploads, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call is a trip to the database thread and back that the client waits for: the lock
    is taken in one statement, and the bytes counted and the lock let go in one (it was 7)."""
    client, uploads, _ = core
    url = create(client, 10)
    assert patch(client, url, 0, b"12345") == 204
    calls: list[str] = []
    run = uploads.db.run

    async def counted(function: Any, *args: Any) -> Any:
        if function is not tus_queries.renew_lock:  # the lease keeper's, on its own clock
            calls.append(function.__name__)
        return await run(function, *args)

    monkeypatch.setattr(uploads.db, "run", counted)
    response = client.patch(url, content=b"678", headers={**OCTETS, "Upload-Offset": "5"})
    assert (response.status_code, response.headers["upload-offset"]) == (204, "8")
    assert calls == ["take_free_lock", "advance_offset"]


def test_the_body_is_read_while_the_lock_is_taken(
    core: tuple[TestClient, Uploads, FakeClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client goes on sending after the headers: its body is taken from the socket while the
    server takes the upload's lock, not only after (it stalled there, ~0.2-1 ms per PATCH)."""
    client, _, _ = core
    url = create(client, 10)
    read = asyncio.Event()
    real_pieces, real_begin = tus.body_pieces, tus_uploads.begin_write

    async def watched(*args: Any) -> AsyncIterator[bytes | bytearray]:
        async for piece in real_pieces(*args):
            read.set()
            yield piece

    async def begin_once_read(*args: Any) -> tus_uploads.Write:
        async with asyncio.timeout(10):
            await read.wait()
        return await real_begin(*args)

    monkeypatch.setattr(tus, "body_pieces", watched)
    monkeypatch.setattr(tus_uploads, "begin_write", begin_once_read)
    response = client.patch(url, content=b"12345", headers={**OCTETS, "Upload-Offset": "0"})
    assert (response.status_code, response.headers["upload-offset"]) == (204, "5")


def test_locks_left_by_a_crash_are_free_when_the_only_process_starts(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, clock = core
    url = create(client, 12)  # not finished here: this storage's first publish fails
    upload_id = url.rsplit("/", 1)[1]
    # A holder that never answers (the process died) and whose lease would run for an hour.
    assert uploads.db.run_sync(tus_queries.take_lock, upload_id, "dead", 0, clock(), 3600.0)
    started = time.monotonic()
    assert patch(client, url, 0, b"abcdef") == 423  # asked, waited, and it did not let go
    assert time.monotonic() - started >= tus_uploads.TAKEOVER_WAIT_SECONDS
    with TestClient(create_app(uploads.settings, uploads=uploads)) as restarted:
        assert patch(restarted, url, 0, b"abcdef") == 204


def test_a_deferred_length_becomes_known_within_the_free_space_only(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, _ = core
    assert isinstance(uploads.storage, LocalStorage)
    free = uploads.storage.free_bytes()
    response = client.post("/files/", headers={**TUS, "Upload-Defer-Length": "1"})
    url = response.headers["location"]
    assert patch(client, url, 0, b"abc") == 204
    too_big = client.patch(
        url, content=b"", headers={**OCTETS, "Upload-Offset": "3", "Upload-Length": str(free)}
    )
    assert too_big.status_code == 507
    assert "not enough space" in too_big.json()["error"]
    assert client.head(url, headers=TUS).headers["upload-defer-length"] == "1"


class FlakyDatabase:
    """Answers lock renewals, failing the calls whose numbers are in `failing`; each call
    advances the clock by a second (a database slow to answer)."""

    def __init__(self, failing: set[int], clock: list[float]) -> None:
        self.failing = failing
        self.clock = clock
        self.calls = 0

    async def run(self, *_: object) -> bool:
        self.calls += 1
        self.clock[0] += 1.0
        if self.calls in self.failing or -1 in self.failing:
            raise sqlite3.OperationalError("database is locked")
        return True


def keep_lock_until_stopped(failing: set[int], monkeypatch: pytest.MonkeyPatch) -> int | None:
    """Run a write's lock keeper over 8 renewals; the renewal at which it stopped the write."""
    monkeypatch.setattr(tus_uploads, "KEEP_SECONDS", 0.001)
    clock = [0.0]
    database = FlakyDatabase(failing, clock)
    stopped: list[int] = []
    uploads = SimpleNamespace(db=database, clock=lambda: clock[0])
    write = SimpleNamespace(
        plan=SimpleNamespace(upload=SimpleNamespace(id="u1"), sink=None),
        holder="h1",
        stop=lambda: stopped.append(database.calls),
    )

    async def run() -> None:
        keeper = asyncio.create_task(tus_uploads._keep_lock(uploads, write))  # type: ignore[arg-type]
        while database.calls < 8:
            await asyncio.sleep(0.001)
        keeper.cancel()

    asyncio.run(run())
    return stopped[0] if stopped else None


def test_one_failed_renewal_does_not_stop_a_write_whose_lease_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A busy database once (it happens under load) used to cut the PATCH at once, though its
    5 s lease still held: the client got a closed connection mid-body."""
    assert keep_lock_until_stopped({1}, monkeypatch) is None
    assert keep_lock_until_stopped({3, 5}, monkeypatch) is None


def test_a_lease_that_cannot_be_renewed_stops_the_write_before_it_lapses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lease (5 s) was last renewed at 0 s; each failed call takes a second: the write stops
    # at the first failure with less than two renewals' time left, before another request can
    # take the lock.
    stopped_at = keep_lock_until_stopped({-1}, monkeypatch)
    assert stopped_at is not None and 4 <= stopped_at < tus_uploads.LOCK_LEASE_SECONDS + 1
