"""Load: 50 concurrent uploads of 64 MiB, 8 MiB chunks, 4 in flight each; all exact. Prints the
time and the server's peak RSS (docs/SECURITY.md records a run)."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import random
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import Server, ServerFactory, sha256_of
from tests.dz import chunk_fields

MiB = 1024 * 1024
UPLOADS = 50
FILE_SIZE = 64 * MiB
CHUNK = 8 * MiB
IN_FLIGHT = 4
BOUNDARY = "l0adb0undary"
TIME_LIMIT_SECONDS = 240
RSS_LIMIT_KIB = 1024 * 1024  # far above what a run takes; a leak of whole chunks would pass it


@dataclass(frozen=True)
class Synthetic:
    """A 64 MiB file made of one shared random buffer, each chunk stamped with (file, chunk) in
    its first 16 bytes: every file differs (no deduplication) and none is held in memory."""

    number: int
    base: memoryview

    def stamp(self, index: int) -> bytes:
        return self.number.to_bytes(8, "big") + index.to_bytes(8, "big")

    def pieces(self, index: int) -> list[bytes | memoryview]:
        start = index * CHUNK
        end = min(FILE_SIZE, start + CHUNK)
        return [self.stamp(index), self.base[start + 16 : end]]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for index in range(math.ceil(FILE_SIZE / CHUNK)):
            for piece in self.pieces(index):
                digest.update(piece)
        return digest.hexdigest()


async def send_chunk(
    client: httpx.AsyncClient, file: Synthetic, upload_id: str, index: int
) -> dict:
    fields = chunk_fields(upload_id, index, CHUNK, FILE_SIZE)
    head = "".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ) + (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="load{file.number:02d}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    pieces = [head.encode(), *file.pieces(index), tail]

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece  # type: ignore[misc]

    response = await client.post(
        "/upload",
        content=body(),
        headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(sum(len(p) for p in pieces)),
        },
    )
    assert response.status_code == 200, response.text
    answer: dict = response.json()
    return answer


async def upload(server: Server, file: Synthetic) -> dict:
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
        await client.get("/healthz")
        upload_id = str(uuid.uuid4())
        order = list(range(math.ceil(FILE_SIZE / CHUNK)))
        random.Random(file.number).shuffle(order)
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def one(index: int) -> dict:
            async with gate:
                return await send_chunk(client, file, upload_id, index)

        answers = await asyncio.gather(*(one(index) for index in order))
    done = [answer["file"] for answer in answers if answer["status"] == "done"]
    assert len(done) == 1
    return done[0]


@pytest.mark.slow
def test_fifty_uploads_of_64_mib_in_parallel(server_factory: ServerFactory) -> None:
    server = server_factory("--min-free", "0")
    base = memoryview(os.urandom(FILE_SIZE))
    files = [Synthetic(number, base) for number in range(UPLOADS)]

    async def run_all() -> list[dict]:
        return await asyncio.gather(*(upload(server, file) for file in files))

    try:
        started = time.monotonic()
        records = asyncio.run(run_all())
        elapsed = time.monotonic() - started
        rss_kib = server.rss_peak_kib()
        total = UPLOADS * FILE_SIZE
        print(
            f"\nload: {UPLOADS} x {FILE_SIZE // MiB} MiB in {elapsed:.1f} s "
            f"({total / elapsed / MiB:.0f} MiB/s), server peak RSS {rss_kib / 1024:.0f} MiB"
        )
        for file, record in zip(files, records, strict=True):
            assert record["name"] == f"load{file.number:02d}.bin"
            assert record["size"] == FILE_SIZE
            assert record["sha256"] == file.sha256()
        for record in random.Random(0).sample(records, 3):  # read back from disk, independently
            assert sha256_of(server.storage_dir / record["name"]) == record["sha256"]
        assert len(server.stored_files()) == UPLOADS
        assert list(server.chunks_dir.iterdir()) == []
        assert elapsed < TIME_LIMIT_SECONDS
        assert rss_kib < RSS_LIMIT_KIB
    finally:
        server.stop()
        shutil.rmtree(server.storage_dir, ignore_errors=True)  # 3.2 GiB, not kept in /tmp
