"""A write's hash computed beside its writing, so the write can count, and its answer leave,
before its last bytes are hashed.

A tus PATCH of 8 MiB waited after its last byte for the hash of its last batch (SHA-256 runs at
about 0.7 ms per MiB here) before it could answer, and the client sends nothing until it has the
answer. The hash is needed only when the file is finished. A `HashLane` hashes an upload's pieces
in order on a worker thread, up to LANE_QUEUE_BYTES behind the writes (memory stays bounded); a
write that counts asks for a `snapshot` of the hash at its end, and whoever needs that awaits it.
The lane outlives the write: the next write to the upload goes on adding to it without waiting
for the hash of the one before (the hash catches up while the client turns round).
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


# A place in the queue where the worker hands back a copy of the hash so far.
_Snapshot = asyncio.Future[Any]


class HashLane:
    def __init__(self, hasher: Any, position: int = 0) -> None:
        self.hasher = hasher
        self.position = position  # where the bytes added so far end (in the file)
        self._batch: list[Buffer] = []  # gathering, on the loop
        self._batched = 0
        self._lock = threading.Lock()  # guards the queue, its size and `_draining`
        self._queue: collections.deque[tuple[list[Buffer] | _Snapshot, int]] = collections.deque()
        self._queued = 0
        self._draining = False
        self._drain: asyncio.Future[None] | None = None  # the worker's job, while it runs
        self._failed: BaseException | None = None  # the hasher's state is unknown past it

    async def add(self, piece: Buffer) -> None:
        """Hash `piece` after the pieces added before it; it must not change afterwards (body
        pieces are never reused, see protocols/body.py)."""
        self._batch.append(piece)
        self._batched += len(piece)
        self.position += len(piece)
        if self._batched >= LANE_BATCH_BYTES:
            self._submit()
            if self._queued > LANE_QUEUE_BYTES:
                await self._settle()

    async def drained(self) -> Any:
        """The hasher, once every piece added is in it."""
        self._submit()
        await self._settle()
        if self._failed is not None:
            raise self._failed
        return self.hasher

    def snapshot(self) -> _Snapshot:
        """A copy of the hash of every piece added so far, once they are hashed; the lane goes on
        with the pieces added after (nothing waits for those)."""
        self._submit()
        snapshot: _Snapshot = asyncio.get_running_loop().create_future()
        self._enqueue(snapshot, 0)
        return snapshot

    @property
    def failed(self) -> bool:
        return self._failed is not None

    def _submit(self) -> None:
        if not self._batch:
            return
        batch, size = self._batch, self._batched
        self._batch, self._batched = [], 0
        self._enqueue(batch, size)

    def _enqueue(self, item: list[Buffer] | _Snapshot, size: int) -> None:
        with self._lock:
            self._queue.append((item, size))
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
        """On a worker thread: hash the queued batches in order until none is left, and hand
        back the snapshots asked for between them."""
        while True:
            with self._lock:
                if not self._queue:
                    self._draining = False
                    return
                item, size = self._queue.popleft()
            try:
                if isinstance(item, list):
                    if self._failed is None:
                        _update(self.hasher, item)
                else:
                    copy = self.hasher.copy() if self._failed is None else None
                    item.get_loop().call_soon_threadsafe(_hand_back, item, copy, self._failed)
            except BaseException as error:  # no snapshot from here on is the file's hash
                self._failed = error
            finally:
                with self._lock:
                    self._queued -= size


def _hand_back(snapshot: _Snapshot, copy: Any, failed: BaseException | None) -> None:
    if snapshot.done():  # cancelled: nobody waits for it
        return
    if failed is not None:
        snapshot.set_exception(failed)
    else:
        snapshot.set_result(copy)


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
