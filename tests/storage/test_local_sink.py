"""The local disk's chunk sink on its own: bytes land at their offset in batches, hashed in
order, short writes are finished, a full disk is 507, abort waits for the write in flight, and
batches shrink as more sinks are open."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import pyfiledrop.storage.local as local
from pyfiledrop.errors import NoSpace
from pyfiledrop.storage import Buffer, Shape
from pyfiledrop.storage.local import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[LocalStorage]:
    storage = LocalStorage(tmp_path / "storage", tmp_path / "chunks", writeback=False)
    storage.root.mkdir()
    storage.partials.mkdir()
    yield storage
    storage.close()


def upload(size: int | None = None) -> Shape:
    return Shape("u", "u.bin", size, max(size or 0, 1), "offsets")


def pieces_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("others", [0, 40])  # one upload: big batches; many: small ones
def test_a_chunk_lands_at_its_offset_and_is_hashed_in_order(
    storage: LocalStorage, others: int
) -> None:
    data = os.urandom(3 * local.BATCH_BYTES + 777)
    hasher = hashlib.sha256()
    batches: list[int] = []

    def on_written(pieces: list[Buffer]) -> None:
        batches.append(sum(map(len, pieces)))
        for piece in pieces:
            hasher.update(piece)

    async def run() -> int:
        await storage.create_partial(upload(4096 + len(data)))
        idle = [await storage.open_chunk(upload(), 0) for _ in range(others)]
        sink = await storage.open_chunk(upload(), 4096, on_written, len(data))
        for piece in pieces_of(data, 65536):
            await sink.write(memoryview(piece))
        for other in idle:
            await other.abort()
        return await sink.finish()

    assert asyncio.run(run()) == len(data)
    written = storage.partial_path("u").read_bytes()
    assert written[4096:] == data and written[:4096] == bytes(4096)
    assert hasher.digest() == hashlib.sha256(data).digest()
    expected = max(local.MIN_BATCH_BYTES, local.BATCH_BUDGET_BYTES // (2 * (others + 1)))
    expected = -(-min(local.BATCH_BYTES, expected) // 65536) * 65536  # whole pieces
    assert batches[:3] == [expected] * 3  # batches, not a write per piece
    assert storage.open_sinks.count == 0


def test_a_short_write_is_finished(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    real_pwritev = os.pwritev

    def short_pwritev(fd: int, buffers: list[Any], offset: int) -> int:
        first = memoryview(buffers[0])
        return real_pwritev(fd, [first[: max(1, len(first) // 3)]], offset)  # a third at most

    monkeypatch.setattr(local.os, "pwritev", short_pwritev)
    data = os.urandom(200_000)

    async def run() -> int:
        await storage.create_partial(upload(len(data)))
        sink = await storage.open_chunk(upload(), 0)
        for piece in pieces_of(data, 30_000):
            await sink.write(piece)
        return await sink.finish()

    assert asyncio.run(run()) == len(data)
    assert storage.partial_path("u").read_bytes() == data


def test_a_full_disk_is_insufficient_storage(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int, buffers: list[Any], offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local.os, "pwritev", full)

    async def run() -> None:
        await storage.create_partial(upload(10))
        sink = await storage.open_chunk(upload(), 0)
        await sink.write(b"0123456789")
        with pytest.raises(NoSpace):
            await sink.finish()

    asyncio.run(run())
    assert storage.open_sinks.count == 0  # closed although it failed


def test_abort_waits_for_the_write_in_flight(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write still running in a thread when the request ends must not land after abort
    returns (the partial may be discarded or published right after)."""
    real_pwritev = os.pwritev
    finished: list[int] = []

    def slow_pwritev(fd: int, buffers: list[Any], offset: int) -> int:
        release.wait(10)
        done = real_pwritev(fd, buffers, offset)
        finished.append(done)
        return done

    release = threading.Event()
    monkeypatch.setattr(local.os, "pwritev", slow_pwritev)

    async def run() -> list[int]:
        await storage.create_partial(upload(2 * local.BATCH_BYTES))
        sink = await storage.open_chunk(upload(), 0)
        await sink.write(bytes(local.BATCH_BYTES))  # submitted: in flight, blocked
        asyncio.get_running_loop().call_later(0.05, release.set)
        await sink.abort()
        return list(finished)

    assert asyncio.run(run()) == [local.BATCH_BYTES]
    assert storage.open_sinks.count == 0


def test_batches_shrink_as_more_sinks_are_open(storage: LocalStorage) -> None:
    async def run() -> list[int]:
        await storage.create_partial(upload(1))
        sizes = []
        sinks = []
        for _ in range(64):
            sinks.append(await storage.open_chunk(upload(), 0))
            sizes.append(storage.open_sinks.batch_bytes)
        for sink in sinks:
            await sink.abort()
        return sizes

    sizes = asyncio.run(run())
    assert sizes[0] == local.BATCH_BYTES
    assert sizes[-1] == max(local.MIN_BATCH_BYTES, local.BATCH_BUDGET_BYTES // (2 * 64))
    assert sizes == sorted(sizes, reverse=True)
    assert storage.open_sinks.batch_bytes == local.BATCH_BYTES  # all closed again


def test_a_read_back_hashes_exactly_its_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any start and end, across mapping windows and pages, and a file too short is an error
    (a mapping past its end would kill the process instead)."""
    monkeypatch.setattr(local, "HASH_MAP_BYTES", 3 * 4096)
    data = os.urandom(10 * 4096 + 123)
    path = tmp_path / "file.part"
    path.write_bytes(data)
    for start, end in [(0, len(data)), (1, 4097), (4095, 8193), (5000, 5000), (12289, len(data))]:
        hasher = hashlib.sha256()
        local.hash_file_range(path, hasher, start, end)
        assert hasher.hexdigest() == hashlib.sha256(data[start:end]).hexdigest()
    with pytest.raises(OSError, match="shorter than expected"):
        local.hash_file_range(path, hashlib.sha256(), 4096, len(data) + 1)


@pytest.mark.parametrize("extra", [0, 777])  # the last batch full (nothing left at finish), or not
def test_writeback_is_started_every_few_megabytes_and_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: int
) -> None:
    """With flush on, every byte of a chunk is sent to writeback once, in ranges of
    WRITEBACK_BYTES (one call per batch cost the server CPU), the last one at the chunk's end."""
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(
        local, "_start_writeback", lambda fd, offset, length: ranges.append((offset, length))
    )
    storage = LocalStorage(tmp_path / "storage", tmp_path / "chunks", writeback=True)
    storage.partials.mkdir(parents=True)
    step = local.WRITEBACK_BYTES
    data = os.urandom(2 * step + 3 * local.BATCH_BYTES + extra)

    async def run() -> None:
        await storage.create_partial(upload(4096 + len(data)))
        sink = await storage.open_chunk(upload(), 4096)
        for piece in pieces_of(data, 65536):
            await sink.write(memoryview(piece))
        await sink.finish()

    try:
        asyncio.run(run())
    finally:
        storage.close()
    end = 4096 + len(data)
    assert ranges == [(4096, step), (4096 + step, step), (4096 + 2 * step, end - 4096 - 2 * step)]
