"""Three `pyfiledrop serve` processes as one service behind a round-robin proxy.

They share the database and the storage. The chunks of one upload are spread over all three; one
process is SIGKILLed mid-upload; the chunks it was receiving are sent again (as Dropzone retries)
and land on the others; the finish may hit any process; the file is published once, exact.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, random_file, sha256_of
from tests.dz import send_chunk
from tests.scale.conftest import Backend
from tests.scale.proxy import RoundRobinProxy

MiB = 1024 * 1024
CHUNK = 5 * MiB
CHUNKS = 12
ATTEMPTS = 6


def start_three(backend: Backend, shared: Path) -> list[Server]:
    flags = ["-a", "--storage", str(shared / "storage"), "--chunks", str(shared / "chunks")]
    if backend.s3 is not None:
        flags = ["-a"]  # the bucket is shared already
    if backend.database is None:
        flags += ["--data", str(shared / "data")]  # SQLite on one host: one file, WAL
    return [backend.start(*flags) for _ in range(3)]


def send_with_retries(
    client: httpx.Client, source: Path, upload_id: str, index: int
) -> httpx.Response:
    for attempt in range(ATTEMPTS):
        try:
            response = send_chunk(client, source, upload_id, index, CHUNK)
        except httpx.TransportError:
            # A client's growing pause before it tries again (the behaviour, not a wait for
            # something): the proxy may still pick the killed process for this attempt.
            time.sleep(0.2 * (attempt + 1))
            continue
        if response.status_code < 500:
            return response
        time.sleep(0.2 * (attempt + 1))
    raise AssertionError(f"chunk {index} failed {ATTEMPTS} times")


@pytest.mark.slow
def test_chunks_spread_over_three_processes_one_killed(backend: Backend, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    servers = start_three(backend, shared)
    source = random_file(tmp_path / "spread.bin", CHUNKS * CHUNK - 12345)
    upload_id = str(uuid.uuid4())
    order = list(range(CHUNKS))
    random.Random(5).shuffle(order)
    victim = servers[1]
    # A new connection per request, so the proxy spreads every chunk.
    limits = httpx.Limits(max_keepalive_connections=0)
    with (
        RoundRobinProxy([s.port for s in servers]) as proxy,
        httpx.Client(base_url=proxy.url, timeout=60, limits=limits) as client,
    ):
        client.get("/healthz")  # the owner cookie first
        results: dict[int, httpx.Response] = {}

        def send(index: int) -> None:
            results[index] = send_with_retries(client, source, upload_id, index)

        first, rest = order[: CHUNKS // 2], order[CHUNKS // 2 :]
        threads = [threading.Thread(target=send, args=(i,)) for i in first]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counted = [server.health()["chunks_counted"] for server in servers]
        assert sum(1 for n in counted if n > 0) >= 2, counted  # really spread
        begun = victim.health()["chunk_requests"]
        threads = [threading.Thread(target=send, args=(i,)) for i in rest]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while victim.health()["chunk_requests"] == begun:  # until one reaches it: poll, bounded
            assert time.monotonic() < deadline, "no chunk of the second half reached the victim"
            time.sleep(0.01)
        victim.kill()  # mid-upload: some of these chunks are in flight to it
        for thread in threads:
            thread.join()
        assert all(r.status_code == 200 for r in results.values())
        finishes = [client.post(f"/upload/{upload_id}/finish") for _ in range(3)]
        assert {f.status_code for f in finishes} == {200}
        records = [f.json()["file"] for f in finishes]
        assert len({r["id"] for r in records}) == 1
        record = records[0]
        assert record["sha256"] == sha256_of(source)
        digest = hashlib.sha256()
        with client.stream("GET", record["url"]) as response:
            assert response.status_code == 200
            for piece in response.iter_bytes():
                digest.update(piece)
        assert digest.hexdigest() == record["sha256"]
        listed = [client.get("/api/files").json()["files"] for _ in range(2)]
        assert all([entry["id"] for entry in files] == [record["id"]] for files in listed)
    assert len(backend.objects() if backend.s3 else list((shared / "storage").iterdir())) == 1
    if backend.s3 is not None:
        assert backend.leftovers() == []
    else:
        assert list((shared / "chunks").iterdir()) == []
