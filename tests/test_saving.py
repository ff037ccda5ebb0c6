"""The saving sink: a long in-order body counts as it goes; after a failed save, nothing more."""

from __future__ import annotations

import asyncio

import pytest

from pyfiledrop import saving
from pyfiledrop.storage import Buffer, ChunkSink


class Sink:
    def __init__(self, opened: list[Sink]) -> None:
        self.bytes = 0
        self.closed = False
        opened.append(self)

    async def write(self, data: Buffer) -> None:
        assert not self.closed
        self.bytes += len(data)

    async def finish(self) -> int:
        self.closed = True
        return self.bytes

    async def abort(self) -> None:
        self.closed = True


def saving_sink(saved: list[int], fail_at: int = 0) -> tuple[saving.SavingSink, list[Sink]]:
    opened: list[Sink] = []

    async def reopen(_: int) -> ChunkSink:
        return Sink(opened)

    async def save(written: int) -> None:
        if len(saved) + 1 == fail_at:
            raise OSError("the books are gone")
        saved.append(written)

    return saving.SavingSink(Sink(opened), reopen, save), opened


def test_a_long_body_counts_every_save_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(saving, "SAVE_BYTES", 10)
    saved: list[int] = []

    async def run() -> int:
        sink, opened = saving_sink(saved)
        for _ in range(7):
            await sink.write(b"abcd")
        total = await sink.finish()
        assert all(inner.closed for inner in opened)
        return total

    assert asyncio.run(run()) == 28
    assert saved == [12, 24]  # the last 4 bytes count when the request ends


def test_after_a_failed_save_nothing_more_is_written_or_counted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(saving, "SAVE_BYTES", 10)
    saved: list[int] = []

    async def run() -> None:
        sink, _ = saving_sink(saved, fail_at=2)
        for _ in range(5):
            await sink.write(b"abcd")  # the 6th piece's save fails
        with pytest.raises(OSError):
            await sink.write(b"abcd")
        with pytest.raises(OSError):
            await sink.write(b"abcd")
        with pytest.raises(OSError):
            await sink.finish()  # not the bytes of the failed save a second time
        await sink.abort()

    asyncio.run(run())
    assert saved == [12]
