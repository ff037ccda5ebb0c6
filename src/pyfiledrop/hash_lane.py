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
import concurrent.futures
import contextlib
import threading
from typing import Any

from pyfiledrop.storage import Buffer, ChunkSink

LANE_BATCH_BYTES = 1024 * 1024  # as the local sink's batches
# How far the hash may lag before the writes wait for it: two batches, so a body that ends while
# one batch is being hashed and one waits does not wait for either.
LANE_QUEUE_BYTES = 2 * LANE_BATCH_BYTES
# How long a lane's thread waits for more before it leaves. While a client sends it stays: the
# next batch comes within ~2 ms, the next write ~1-3 ms after an answer. A job handed to the
# executor per batch cost ~26 us of CPU on the loop (meta/threads.py) and woke the loop when done;
# a batch queued to a waiting thread costs a notify, and wakes the loop only for who awaits it.
LANE_IDLE_SECONDS = 0.05
# Lanes' own threads: one lingering LANE_IDLE_SECONDS after its last batch must not keep the
# default executor's few threads (6 on 2 cores) from other work, nor wait behind it. tus gives a
# lane to at most 4 writes at once (tus_uploads.HASH_BESIDE_WRITES); twice that leaves room for
# the lanes still lingering.
LANE_THREADS = 8
_LANE_THREADS = concurrent.futures.ThreadPoolExecutor(LANE_THREADS, "pfd-hash-lane")

# A place in the queue where the worker hands back a copy of the hash so far.
_Snapshot = asyncio.Future[Any]


class HashLane:
    def __init__(self, hasher: Any, position: int = 0) -> None:
        self.hasher = hasher
        self.position = position  # where the bytes added so far end (in the file)
        self._batch: list[Buffer] = []  # gathering, on the loop
        self._batched = 0
        # Guards the queue, its size, the waiters and `_serving`; the thread waits on it.
        self._ready = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[list[Buffer] | _Snapshot, int]] = collections.deque()
        self._queued = 0
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (queued at most, woken)
        self._serving = False  # a thread takes the queue
        self._failed: BaseException | None = None  # the hasher's state is unknown past it

    async def add(self, piece: Buffer) -> None:
        """Hash `piece` after the pieces added before it; it must not change afterwards (body
        pieces are never reused, see protocols/body.py)."""
        self._batch.append(piece)
        self._batched += len(piece)
        self.position += len(piece)
        if self._batched >= LANE_BATCH_BYTES:
            self._submit()
            await self._lagging_at_most(LANE_QUEUE_BYTES)

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
        with self._ready:
            self._queue.append((item, size))
            self._queued += size
            if self._serving:
                self._ready.notify()
                return
            self._serving = True
        try:
            _LANE_THREADS.submit(self._serve)
        except (
            BaseException
        ):  # shutting down: no thread will take the queue, later adds must not wait
            with self._ready:
                self._serving = False
            raise

    async def _lagging_at_most(self, size: int) -> None:
        """Until at most `size` bytes wait to be hashed."""
        with self._ready:
            if self._queued <= size:
                return
            woken = asyncio.get_running_loop().create_future()
            self._waiters.append((size, woken))
        await woken

    def _serve(self) -> None:
        """On a worker thread: hash the queued batches in order, and hand back the snapshots
        asked for between them; leave once nothing came for LANE_IDLE_SECONDS."""
        while True:
            with self._ready:
                while not self._queue:
                    if not self._ready.wait(LANE_IDLE_SECONDS) and not self._queue:
                        self._serving = False
                        return
                item, size = self._queue.popleft()
            try:
                if isinstance(item, list):
                    if self._failed is None:
                        _update(self.hasher, item)
                else:
                    self._hand_back_copy(item)
            except BaseException as error:  # no snapshot from here on is the file's hash
                self._failed = error
            finally:
                self._hashed(size)

    def _hand_back_copy(self, snapshot: _Snapshot) -> None:
        copy = None
        if self._failed is None:
            try:
                copy = self.hasher.copy()
            except BaseException as error:  # its waiter must still hear of it, or wait forever
                self._failed = error
        _call_on_loop(snapshot, _hand_back, snapshot, copy, self._failed)

    def _hashed(self, size: int) -> None:
        with self._ready:
            self._queued -= size
            woken = [waiter for waiter in self._waiters if self._queued <= waiter[0]]
            if woken:
                self._waiters = [waiter for waiter in self._waiters if waiter not in woken]
        for _, future in woken:
            _call_on_loop(future, _hand_back, future, None, None)


def _call_on_loop(future: asyncio.Future[Any], *call: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        future.get_loop().call_soon_threadsafe(*call)


def _hand_back(future: asyncio.Future[Any], result: Any, failed: BaseException | None) -> None:
    if future.done():  # cancelled: nobody waits for it
        return
    if failed is not None:
        future.set_exception(failed)
    else:
        future.set_result(result)


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
