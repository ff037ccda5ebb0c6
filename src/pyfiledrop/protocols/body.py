"""Reading request bodies: idle timeouts, and feeding a chunk's bytes to its sink within a limit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.requests import ClientDisconnect, Request

from pyfiledrop.errors import Invalid, TooLarge, TooSlow
from pyfiledrop.storage import Buffer, ChunkSink
from pyfiledrop.uploads import ChunkOutcome, ChunkPlan, Uploads
from pyfiledrop.web.body_takeover import Stalled, take_body

MIN_IDLE_SECONDS = 30.0


def idle_timeout(uploads: Uploads) -> float:
    """How long a body may send nothing: Dropzone's per-chunk timeout, at least MIN_IDLE_SECONDS."""
    return max(MIN_IDLE_SECONDS, uploads.settings.timeout / 1000)


async def body_pieces(
    request: Request, idle: float, take: bool = True
) -> AsyncGenerator[bytes | bytearray, None]:
    """The body as it arrives; a sender silent for `idle` seconds is cut off (slow-loris), and
    so is one that keeps sending too little to matter (`RateFloor`).

    Straight from the socket in big buffers where the server can (body_takeover.py) and `take`,
    else through ASGI's messages. Pieces are never reused: views of them stay valid. Every byte
    that arrived is yielded before the error that ends a cut, stalled or too slow body."""
    floor = RateFloor.of(request)
    taken = take_body(request.scope, idle, floor.check) if take else None
    if taken is not None:
        async with aclosing(taken):
            try:
                async for buffer in taken:
                    yield buffer
            except Stalled as error:
                raise Invalid(str(error)) from None
        return
    stream = request.stream().__aiter__()
    while True:
        try:
            async with asyncio.timeout(idle):
                piece = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise Invalid(f"the request body stalled for {idle:.0f} s") from None
        if piece:
            try:
                floor.check(len(piece))
            except TooSlow:
                yield piece  # it arrived: the handler may count it (tus) before the 408
                raise
            yield piece


class RateFloor:
    """An overall floor beside the per-read idle timeout (nginx's `client_body_timeout` resets on
    every read, so a byte every 25 s holds a connection forever): over each window of
    `min_rate_window` seconds a body must average `min_rate` bytes/s, or it is cut off (408)."""

    def __init__(self, rate: int, window: float) -> None:
        self.rate = rate
        self.window = window
        self.started = time.monotonic()
        self.bytes = 0

    @classmethod
    def of(cls, request: Request) -> RateFloor:
        uploads = getattr(request.app.state, "uploads", None)
        if uploads is None:
            return cls(0, 1.0)
        return cls(uploads.settings.min_rate, float(uploads.settings.min_rate_window))

    def check(self, received: int) -> None:
        if not self.rate:
            return
        self.bytes += received
        now = time.monotonic()
        elapsed = now - self.started
        if elapsed < self.window:
            return
        if self.bytes < self.rate * elapsed:
            raise TooSlow(
                f"the request body arrived at {self.bytes / elapsed:.0f} bytes/s over"
                f" {elapsed:.0f} s, below this server's floor of {self.rate} bytes/s"
            )
        self.started, self.bytes = now, 0


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise Invalid("Content-Length is not a number")
    return int(value)


class ChunkFeeder:
    """Passes a chunk's pieces to its sink (or drops them for a duplicate), counting and capping."""

    def __init__(self, plan: ChunkPlan) -> None:
        self.plan = plan
        self.received = 0

    async def feed(self, piece: Buffer) -> None:
        self.received += len(piece)
        if self.received > self.plan.limit:
            raise TooLarge(
                "the file part is longer than the chunk it claims"
                if self.plan.length is not None
                else "the file is larger than the server's limit"
            )
        if self.plan.check_stream is not None:
            await self.plan.check_stream(self.received)  # before the piece is written
        if self.plan.sink is not None:
            await self.plan.sink.write(piece)

    async def finish(self, uploads: Uploads) -> ChunkOutcome:
        sink: ChunkSink | None = self.plan.sink
        written = await sink.finish() if sink is not None else self.received
        return await uploads.complete_chunk(self.plan, written)

    async def abort(self, uploads: Uploads) -> None:
        if self.plan.sink is not None:
            await self.plan.sink.abort()
        await uploads.abort_chunk(self.plan)


__all__ = ["ChunkFeeder", "ClientDisconnect", "body_pieces", "declared_length", "idle_timeout"]
