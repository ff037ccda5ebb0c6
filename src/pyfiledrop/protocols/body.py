"""Reading request bodies: idle timeouts, and feeding a chunk's bytes to its sink within a limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import ClientDisconnect, Request

from pyfiledrop.errors import BadRequest, PayloadTooLarge
from pyfiledrop.storage import Buffer, ChunkSink
from pyfiledrop.uploads import ChunkPlan, Uploads

MIN_IDLE_SECONDS = 30.0


def idle_timeout(uploads: Uploads) -> float:
    """How long a body may send nothing: Dropzone's per-chunk timeout, at least MIN_IDLE_SECONDS."""
    return max(MIN_IDLE_SECONDS, uploads.settings.timeout / 1000)


async def body_pieces(request: Request, idle: float) -> AsyncIterator[bytes]:
    """The body as it arrives; a sender silent for `idle` seconds is cut off (slow-loris)."""
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BadRequest(f"the request body stalled for {idle:.0f} s") from None
        if piece:
            yield piece


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise BadRequest("Content-Length is not a number")
    return int(value)


class ChunkFeeder:
    """Passes a chunk's pieces to its sink (or drops them for a duplicate), counting and capping."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self.received = 0

    async def feed(self, piece: Buffer) -> None:
        self.received += len(piece)
        if self.received > self.plan.limit:
            raise PayloadTooLarge(
                "the file part is longer than the chunk it claims"
                if self.plan.length is not None
                else "the file is larger than the server's limit"
            )
        if self.plan.check_stream is not None:
            await self.plan.check_stream(self.received)  # before the piece is written
        if self.plan.sink is not None:
            await self.plan.sink.write(piece)

    async def finish(self, uploads: Uploads) -> dict[str, object]:
        sink: ChunkSink | None = self.plan.sink
        written = await sink.finish() if sink is not None else self.received
        return await uploads.complete_chunk(self.plan, written)

    async def abort(self, uploads: Uploads) -> None:
        if self.plan.sink is not None:
            await self.plan.sink.abort()
        await uploads.abort_chunk(self.plan)


__all__ = ["ChunkFeeder", "ClientDisconnect", "body_pieces", "declared_length", "idle_timeout"]
