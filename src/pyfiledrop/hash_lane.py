"""A write's hash computed beside its writing, so the write can count, and its answer leave,
before its last bytes are hashed.

A tus PATCH of 8 MiB waited after its last byte for the hash of its last batch (SHA-256 runs at
about 0.7 ms per MiB here) before it could answer, and the client sends nothing until it has the
answer. The hash is needed only when the next write to the upload continues it, or when the file
is finished. A `HashLane` hashes a write's pieces in order on a worker thread, at most one batch
behind (memory stays bounded), and whoever needs the result awaits `drained()`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyfiledrop.storage import Buffer, ChunkSink

LANE_BATCH_BYTES = 1024 * 1024  # as the local sink's batches: one thread hop per MiB


class HashLane:
    def __init__(self, hasher: Any) -> None:
        self.hasher = hasher
        self._batch: list[Buffer] = []
        self._batched = 0
        self._running: asyncio.Future[None] | None = None

    async def add(self, piece: Buffer) -> None:
        """Hash `piece` after the pieces added before it; it must not change afterwards (body
        pieces are never reused, see protocols/body.py)."""
        self._batch.append(piece)
        self._batched += len(piece)
        if self._batched >= LANE_BATCH_BYTES:
            await self._submit()

    async def drained(self) -> Any:
        """The hasher, once every piece added is in it."""
        await self._submit()
        await self._settle()
        return self.hasher

    async def _settle(self) -> None:
        running, self._running = self._running, None
        if running is not None:
            await running

    async def _submit(self) -> None:
        await self._settle()  # one batch in flight, and the order kept
        if not self._batch:
            return
        batch, self._batch, self._batched = self._batch, [], 0
        loop = asyncio.get_running_loop()
        self._running = loop.run_in_executor(None, _update, self.hasher, batch)


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
