"""Crashes: the server SIGKILLed under 20 concurrent uploads, and clients cut off mid-chunk."""

from __future__ import annotations

import contextlib
import math
import os
import random
import socket
import sqlite3
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyfiledrop.meta import queries
from tests.conftest import Server, random_file, sha256_of
from tests.dz import chunk_fields, read_chunk, send_chunk
from tests.harness import app_client
from tests.rawhttp import head, multipart

KiB = 1024
MiB = 1024 * KiB
UPLOADS = 20
CHUNK = 256 * KiB
KILLS = 3
CHAOS_SECONDS = 120.0
SEED = 20261125


def wait_until_up(client: httpx.Client, deadline: float) -> None:
    """Poll with the client's own connection pool (a new httpx client per poll is costly)."""
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if client.get("/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError("server did not come back")


@dataclass
class Client:
    """One uploader that survives server crashes: on a broken connection it asks what the
    server has (GET /upload/<id>) and sends only the rest, keeping its owner cookie."""

    server: Server
    source: Path
    rng: random.Random
    upload_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    record: dict[str, Any] | None = None
    resumes: int = 0
    unexpected: list[str] = field(default_factory=list)
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return max(1, math.ceil(self.source.stat().st_size / CHUNK))

    def first_order(self) -> list[int]:
        order = list(range(self.count))
        order += self.rng.sample(order, k=max(1, self.count // 8))  # some chunks sent twice
        self.rng.shuffle(order)
        return order

    def run(self, deadline: float) -> None:
        with httpx.Client(base_url=self.server.url, timeout=20) as client:
            try:
                self._run(client, deadline)
            finally:
                self.cookies = dict(client.cookies)

    def _run(self, client: httpx.Client, deadline: float) -> None:
        pending = self.first_order()
        while time.monotonic() < deadline:
            try:
                if "pfd_owner" not in client.cookies:
                    client.get("/healthz")
                if self._send(client, pending):
                    return
                pending = self._missing(client)
            except httpx.TransportError:
                self.resumes += 1
                wait_until_up(client, deadline)
                with contextlib.suppress(httpx.TransportError):
                    pending = self._missing(client)
                    if self.record is not None:
                        return
        self.unexpected.append("ran out of time")

    def _send(self, client: httpx.Client, pending: list[int]) -> bool:
        def one(index: int) -> None:
            response = send_chunk(client, self.source, self.upload_id, index, CHUNK)
            if response.status_code != 200:
                self.unexpected.append(f"chunk {index}: {response.status_code} {response.text}")
            else:
                PROGRESS.add()
                if response.json()["status"] == "done":
                    self.record = response.json()["file"]

        with ThreadPoolExecutor(2) as pool:
            list(pool.map(one, pending))
        if self.record is not None:
            return True
        finish = client.post(f"/upload/{self.upload_id}/finish")
        if finish.status_code == 200:
            self.record = finish.json()["file"]
            return True
        if finish.status_code != 409:
            self.unexpected.append(f"finish: {finish.status_code} {finish.text}")
        return False

    def _missing(self, client: httpx.Client) -> list[int]:
        state = client.get(f"/upload/{self.upload_id}")
        if state.status_code == 404:
            return self.first_order()  # the crash came before the server knew the upload
        assert state.status_code == 200, state.text
        body = state.json()
        if body["state"] == "done":
            self.record = body["file"]
            return []
        if body["state"] == "finalizing" and not (set(range(self.count)) - set(body["received"])):
            # Another request is finishing it: a client's pause before it asks again (the
            # chaos loop re-asks until the upload is done; nothing waits on this sleep).
            time.sleep(0.2)
        return [i for i in range(self.count) if i not in body["received"]]


class Progress:
    """Chunks answered 200 across all clients: the killer strikes at points of the upload, not
    of the clock, so the kills land mid-upload on a fast machine as on a slow one."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def add(self) -> None:
        with self.lock:
            self.count += 1


PROGRESS = Progress()


def killer(
    server: Server, rng: random.Random, busy: threading.Event, total: int, log: list[float]
) -> None:
    started = time.monotonic()
    marks = sorted(rng.uniform(0.1, 0.85) * total for _ in range(KILLS))
    for mark in marks:
        while busy.is_set() and PROGRESS.count < mark:
            time.sleep(0.005)
        if not busy.is_set():
            return
        time.sleep(rng.uniform(0.0, 0.05))  # the chaos itself: not always right after a response
        server.kill()
        log.append(time.monotonic() - started)
        time.sleep(rng.uniform(0.0, 0.2))  # the chaos itself: down for a random while
        server.start()


@pytest.mark.slow
def test_twenty_uploads_survive_repeated_sigkill(server: Server, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    PROGRESS.count = 0
    sources = [
        random_file(
            tmp_path / f"up{n:02d}.bin", rng.randint(2 * MiB, 5 * MiB) + rng.randint(0, 999)
        )
        for n in range(UPLOADS)
    ]
    clients = [Client(server, source, random.Random(rng.random())) for source in sources]
    busy = threading.Event()
    busy.set()
    kills: list[float] = []
    total = sum(client.count for client in clients)
    chaos = threading.Thread(
        target=killer, args=(server, random.Random(SEED + 1), busy, total, kills)
    )
    deadline = time.monotonic() + CHAOS_SECONDS
    started = time.monotonic()
    chaos.start()
    with ThreadPoolExecutor(UPLOADS) as pool:
        list(pool.map(lambda client: client.run(deadline), clients))
    busy.clear()
    chaos.join()
    elapsed = time.monotonic() - started
    print(f"crash test: {len(kills)} kills at {[round(k, 2) for k in kills]} s, "
          f"{sum(c.resumes for c in clients)} resumes, {elapsed:.1f} s")  # fmt: skip

    assert len(kills) == KILLS, "the uploads finished before every kill"
    assert [c.unexpected for c in clients] == [[] for _ in clients]
    for client in clients:
        assert client.record is not None
        stored = server.storage_dir / str(client.record["name"])
        assert client.record["sha256"] == sha256_of(client.source) == sha256_of(stored)
        assert client.record["size"] == client.source.stat().st_size
    assert {p.name for p in server.stored_files()} == {s.name for s in sources}
    assert list(server.chunks_dir.iterdir()) == []
    for client in clients:  # published exactly once, to its owner
        with httpx.Client(base_url=server.url, cookies=client.cookies) as owner:
            listed = owner.get("/api/files").json()["files"]
        assert [f["id"] for f in listed] == [client.record["id"]]


def raw_chunk_request(
    port: int, cookie: str, upload_id: str, data: bytes, total: int, index: int
) -> tuple[bytes, bytes]:
    """The head and the body of a one-chunk request, to send part of it and hang up."""
    fields = list(chunk_fields(upload_id, index, MiB, total).items())
    body = multipart(fields, "cut.bin", data)
    request_head = head(
        "POST",
        "/upload",
        {
            "Cookie": f"pfd_owner={cookie}",
            "Content-Type": "multipart/form-data; boundary=rawb0undary",
        },
        len(body),
    )
    return request_head, body


def cut_after(port: int, request: bytes, sent: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request[:sent])
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.recv(1)


def test_connection_cut_anywhere_in_a_chunk_counts_nothing(server: Server, tmp_path: Path) -> None:
    """Cut in the fields, in the file headers, mid-bytes, and after every byte but the closing
    boundary: the chunk (wrong bytes, so a count would show in the hash) is never counted."""
    source = random_file(tmp_path / "cut.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert send_chunk(client, source, upload_id, 1, MiB).status_code == 200
        cookie = client.cookies["pfd_owner"]
        garbage = bytes(reversed(read_chunk(source, 0, MiB)))
        request_head, body = raw_chunk_request(server.port, cookie, upload_id, garbage, 2 * MiB, 0)
        file_start = body.index(b"\r\n\r\n", body.index(b'filename="cut.bin"')) + 4
        closing = len(body) - len(b"\r\n--rawb0undary--\r\n")
        cut_points = [40, file_start - 5, file_start, file_start + 1, file_start + MiB // 2,
                      closing - 1, closing, closing + 3]  # fmt: skip
        for point in cut_points:
            cut_after(server.port, request_head + body, len(request_head) + point)
            state = client.get(f"/upload/{upload_id}").json()
            assert state["received"] == [1], f"cut at body byte {point} was counted"
        assert server.stored_files() == []
        last = send_chunk(client, source, upload_id, 0, MiB)
    assert last.json()["status"] == "done"
    record = last.json()["file"]
    assert record["sha256"] == sha256_of(source) == sha256_of(server.storage_dir / "cut.bin")
    assert server.health()["chunks_counted"] == 2


def test_restart_frees_uploads_whose_finisher_died(server: Server, tmp_path: Path) -> None:
    """SIGKILL right after an upload was claimed for finalizing leaves the lease of a dead process;
    a restarted single-process server must not make the client wait for it to run out."""
    source = random_file(tmp_path / "lease.bin", 4 * MiB)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for index in range(3):
            assert send_chunk(client, source, upload_id, index, MiB).status_code == 200
        cookies = dict(client.cookies)
    server.kill()
    # What the killed process had done: the last chunk written and counted, the lease claimed.
    partial = server.chunks_dir / f"{upload_id}.part"
    with partial.open("r+b") as handle:
        handle.seek(3 * MiB)
        handle.write(read_chunk(source, 3, MiB))
    with contextlib.closing(sqlite3.connect(server.data_dir / "pyfiledrop.sqlite3")) as db, db:
        db.execute("INSERT INTO chunks (upload_id, idx) VALUES (?, 3)", (upload_id,))
        db.execute(
            "UPDATE uploads SET state = 'finalizing', lease_until = ?, received = received + 1"
            " WHERE id = ?",
            (time.time() + 60, upload_id),
        )
    server.start()
    with httpx.Client(base_url=server.url, timeout=10, cookies=cookies) as client:
        started = time.monotonic()
        finish = client.post(f"/upload/{upload_id}/finish")
        waited = time.monotonic() - started
    assert finish.status_code == 200, finish.text
    assert waited < 5
    assert finish.json()["file"]["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "lease.bin") == sha256_of(source)


def test_failure_between_publishing_and_recording_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is linked into storage, then recording it fails (a crash, a database error):
    the next finish must still find the bytes and publish the same exact file, once."""
    real_publish = queries.publish
    calls: list[str] = []

    def fail_first(connection: Any, *args: Any) -> None:
        calls.append("publish")
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        real_publish(connection, *args)

    monkeypatch.setattr(queries, "publish", fail_first)
    source = random_file(tmp_path / "linked.bin", 3 * MiB + 5)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app") as client:
        client.get("/healthz")
        for index in range(3):
            assert send_chunk(client, source, upload_id, index, MiB).status_code == 200
        failed = send_chunk(client, source, upload_id, 3, MiB)
        assert failed.status_code == 500
        finish = client.post(f"/upload/{upload_id}/finish")
        assert finish.status_code == 200, finish.text
        again = client.post(f"/upload/{upload_id}/finish")
    record = finish.json()["file"]
    assert again.json()["file"]["id"] == record["id"]
    storage = tmp_path / "app" / "storage"
    assert [p.name for p in storage.iterdir()] == ["linked.bin"]
    assert record["sha256"] == sha256_of(source) == sha256_of(storage / "linked.bin")
    assert list((tmp_path / "app" / "chunks").iterdir()) == []


def test_partial_left_by_a_crash_after_publishing_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is recorded, then the process dies before removing the partial: the janitor
    (which also runs at start-up) removes it, whatever its age."""
    source = random_file(tmp_path / "left.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app") as client:
        uploads = client.app.state.uploads  # type: ignore[attr-defined]
        real_discard = uploads.storage.discard_partial

        async def crash_before_discarding(upload_id: str) -> None:
            raise OSError("killed")

        monkeypatch.setattr(uploads.storage, "discard_partial", crash_before_discarding)
        client.get("/healthz")
        send_chunk(client, source, upload_id, 0, MiB)
        assert send_chunk(client, source, upload_id, 1, MiB).json()["status"] == "done"
        partial = tmp_path / "app" / "chunks" / f"{upload_id}.part"
        assert partial.exists()
        os.utime(partial, (uploads.clock(), uploads.clock()))  # new by the app's (fake) clock
        monkeypatch.setattr(uploads.storage, "discard_partial", real_discard)
        assert client.portal.call(uploads.remove_abandoned) == 1  # type: ignore[union-attr]
        assert not partial.exists()
        stored = tmp_path / "app" / "storage" / "left.bin"
        assert sha256_of(stored) == sha256_of(source)
