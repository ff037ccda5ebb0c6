"""The hash lane (hash_lane.py): in order, and never more than LANE_QUEUE_BYTES behind."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from typing import Any

import pytest

from pyfiledrop import hash_lane
from pyfiledrop.hash_lane import LANE_BATCH_BYTES, LANE_QUEUE_BYTES, HashLane


def test_a_lane_hashes_every_piece_in_order() -> None:
    pieces = [os.urandom(size) for size in (1, 700_000, 65_536, 1_500_000, 3, 2_000_000, 9)]

    async def hashed() -> str:
        lane = HashLane(hashlib.sha256())
        for piece in pieces:
            await lane.add(memoryview(piece))
        return str((await lane.snapshot()).hexdigest())

    assert asyncio.run(hashed()) == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_the_writes_wait_once_the_hash_lags_past_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    held = threading.Event()
    real_update = hash_lane._update

    def slow(hasher: Any, pieces: list[Any]) -> None:
        assert held.wait(10)
        real_update(hasher, pieces)

    monkeypatch.setattr(hash_lane, "_update", slow)
    batch = os.urandom(LANE_BATCH_BYTES)

    async def lagging() -> None:
        lane = HashLane(hashlib.sha256())
        for _ in range(LANE_QUEUE_BYTES // LANE_BATCH_BYTES):
            await lane.add(batch)  # queued behind the held one: no wait
        one_more = asyncio.create_task(lane.add(batch))
        for _ in range(20):
            await asyncio.sleep(0)  # let it run as far as it can
        assert not one_more.done()  # the hash is held: past the queue, the write waits
        held.set()
        await one_more
        count = LANE_QUEUE_BYTES // LANE_BATCH_BYTES + 1
        assert (await lane.snapshot()).digest() == hashlib.sha256(batch * count).digest()

    asyncio.run(lagging())


def test_a_snapshot_is_the_hash_where_it_was_asked_for_while_the_lane_goes_on() -> None:
    pieces = [os.urandom(size) for size in (700_000, 1_500_000, 3, 2_000_000)]

    async def snapshots() -> list[str]:
        lane = HashLane(hashlib.sha256(), position=10)
        taken = []
        for piece in pieces:
            await lane.add(memoryview(piece))
            taken.append(lane.snapshot())
        assert lane.position == 10 + sum(map(len, pieces))
        return [hasher.hexdigest() for hasher in await asyncio.gather(*taken)]

    expected = [hashlib.sha256(b"".join(pieces[: n + 1])).hexdigest() for n in range(len(pieces))]
    assert asyncio.run(snapshots()) == expected


def test_after_a_failed_hash_no_snapshot_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(hasher: Any, pieces: list[Any]) -> None:
        raise MemoryError

    async def failing() -> None:
        lane = HashLane(hashlib.sha256())
        await lane.add(os.urandom(LANE_BATCH_BYTES))
        monkeypatch.setattr(hash_lane, "_update", broken)
        await lane.add(os.urandom(LANE_BATCH_BYTES))
        with pytest.raises(MemoryError):
            await lane.snapshot()
        assert lane.failed
        monkeypatch.undo()
        await lane.add(b"more")
        with pytest.raises(MemoryError):
            await lane.snapshot()

    asyncio.run(failing())


def test_one_thread_serves_a_lane_while_its_batches_keep_coming(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not one executor job per batch (~26 us of the loop's CPU each, and a wake-up when done):
    the lane's thread waits for the next batch."""
    monkeypatch.setattr(hash_lane, "LANE_IDLE_SECONDS", 10.0)
    started: list[threading.Thread] = []
    real_serve = HashLane._serve

    def serve(lane: HashLane) -> None:
        started.append(threading.current_thread())
        real_serve(lane)

    monkeypatch.setattr(HashLane, "_serve", serve)
    batch = os.urandom(LANE_BATCH_BYTES)

    async def batches() -> bytes:
        lane = HashLane(hashlib.sha256())
        for _ in range(8):
            await lane.add(batch)
            await lane.snapshot()  # its thread has nothing left to do: it waits
        assert len(started) == 1
        digest: bytes = (await lane.snapshot()).digest()
        monkeypatch.setattr(hash_lane, "LANE_IDLE_SECONDS", 0.0)
        with lane._ready:  # let the thread leave now rather than in 10 s
            lane._ready.notify()
        return digest

    assert asyncio.run(batches()) == hashlib.sha256(batch * 8).digest()


def test_a_snapshot_whose_copy_fails_is_still_answered() -> None:
    """A hasher whose copy() fails (MemoryError) marks the lane failed; the snapshot being taken
    must still be answered (with the error), or whoever awaits it (`_adopt_when_hashed`'s task,
    then `hash_settled`: the next write and the finish) waits for ever."""

    class NoCopy:
        def __init__(self) -> None:
            self.inner = hashlib.sha256()

        def update(self, data: Any) -> None:
            self.inner.update(data)

        def copy(self) -> Any:
            raise MemoryError

    async def snapshot_of_failing_copy() -> None:
        lane = HashLane(NoCopy())
        await lane.add(b"some bytes")
        with pytest.raises(MemoryError):
            await asyncio.wait_for(lane.snapshot(), 2)
        assert lane.failed

    asyncio.run(snapshot_of_failing_copy())
