"""A write's hash computed beside its writing, so the write can count, and its answer leave,
before its last bytes are hashed.

A tus PATCH of 8 MiB waited after its last byte for the hash of its last batch (SHA-256 runs at
about 0.7 ms per MiB here) before it could answer, and the client sends nothing until it has the
answer. The hash is needed only when the next write to the upload continues it, or when the file
is finished. A `HashLane` hashes a write's pieces in order on a worker thread, up to
LANE_QUEUE_BYTES behind the writes (memory stays bounded), and whoever needs the result awaits
`drained()`.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from typing import Any

from pyfiledrop.storage import Buffer, ChunkSink

LANE_BATCH_BYTES = 1024 * 1024  # as the local sink's batches: one thread hop per MiB
# How far the hash may lag before the writes wait for it: two batches, so a body that ends while
# one batch is being hashed and one waits does not wait for either.
LANE_QUEUE_BYTES = 2 * LANE_BATCH_BYTES


class HashLane:
    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self._batch: list[Buffer] = []  # gathering, on the loop
        self._batched = 0
        self._lock = threading.Lock()  # guards the queue, its size and `_draining`
        self._queue: collections.deque[tuple[list[Buffer], int]] = collections.deque()
        self._queued = 0
        self._draining = False
        self._drain: asyncio.Future[None] | None = None  # the worker's job, while it runs

    async def add(self, piece: Buffer) -> None:
        """Hash `piece` after the pieces added before it; it must not change afterwards (body
        pieces are never reused, see protocols/body.py)."""
        self._batch.append(piece)
        self._batched += len(piece)
        if self._batched >= LANE_BATCH_BYTES:
            self._submit()
            if self._queued > LANE_QUEUE_BYTES:
                await self._settle()

    async def drained(self) -> Any:
        """The hasher, once every piece added is in it."""
        self._submit()
        await self._settle()
        return self.hasher

    def _submit(self) -> None:
        if not self._batch:
            return
        batch, size = self._batch, self._batched
        self._batch, self._batched = [], 0
        with self._lock:
            self._queue.append((batch, size))
            self._queued += size
            if self._draining:
                return  # the running job takes it
            self._draining = True
        self._drain = asyncio.get_running_loop().run_in_executor(None, self._work)

    async def _settle(self) -> None:
        """Until the queue is empty: a job that ends has taken everything queued before it."""
        while (drain := self._drain) is not None:
            await drain
            if self._drain is drain:
                self._drain = None

    def _work(self) -> None:
        """On a worker thread: hash the queued batches in order until none is left."""
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                batch, size = self._queue.popleft()
            try:
                _update(self.hasher, batch)
            finally:
                with self._lock:
                    self._queued -= size


def _update(hasher: Any, pieces: list[Buffer]) -> None:
    for piece in pieces:
        hasher.update(piece)


class LaneSink:
    """A sink whose bytes also go through a hash lane: its `finish` waits for the writes only."""

    def __init__(self, sink: ChunkSink, lane: HashLane) -> None:
        self._sink = sink
        self._lane = lane

    async def write(self, data: Buffer) -> None:
        await self._sink.write(data)
        await self._lane.add(data)

    async def finish(self) -> int:
        return await self._sink.finish()

    async def abort(self) -> None:
        await self._sink.abort()
