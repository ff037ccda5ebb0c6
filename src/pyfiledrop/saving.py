"""A sink that makes a long body count as it arrives, for uploads received in order (tus).

Every SAVE_BYTES or SAVE_SECONDS the bytes so far are made to count, as if the request ended
there: the inner sink is finished, `save` flushes and records them, and a new inner sink goes on
from where they end. After a crash the upload holds what was saved (tusd does the same); a write
cut mid-body loses at most the last second of it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

from pyfiledrop.storage import Buffer, ChunkSink

SAVE_BYTES = 32 * 1024 * 1024
SAVE_SECONDS = 1.0


class SavingSink:
    def __init__(
        self,
        sink: ChunkSink,
        reopen: Callable[[int], Awaitable[ChunkSink]],
        save: Callable[[int], Awaitable[None]],
    ) -> None:
        self._sink = sink
        self._reopen = reopen  # a sink for the bytes after the first n
        self._save_hook = save  # make the first n bytes count
        self._written = 0  # by the inner sinks finished so far
        self._received = 0
        self._saved_at = time.monotonic()
        self._failed: BaseException | None = None  # a save that failed: nothing more counts
        self._closed = False
        # A save from outside (`save_if_due`, while the body is silent) never meets a write.
        self._lock = asyncio.Lock()

    async def write(self, data: Buffer) -> None:
        async with self._lock:
            self._check()
            await self._sink.write(data)
            self._received += len(data)
            if self._received - self._written >= SAVE_BYTES or time.monotonic() >= self.due():
                await self._save()

    def due(self) -> float:
        """When (time.monotonic) the bytes received since the last save should be saved."""
        if self._closed or self._received == self._written:
            return math.inf
        return self._saved_at + SAVE_SECONDS

    async def save_if_due(self) -> None:
        if not self._lock.locked() and time.monotonic() >= self.due():
            async with self._lock:
                await self._save()

    async def _save(self) -> None:
        try:
            self._written += await self._sink.finish()
            self._saved_at = time.monotonic()
            await self._save_hook(self._written)
            self._sink = await self._reopen(self._written)
        except BaseException as error:
            self._failed = error
            raise

    def _check(self) -> None:
        if self._failed is not None:
            raise self._failed

    async def finish(self) -> int:
        async with self._lock:
            self._check()
            self._closed = True
            return self._written + await self._sink.finish()

    async def abort(self) -> None:
        async with self._lock:
            if self._failed is None and not self._closed:
                self._closed = True
                await self._sink.abort()
