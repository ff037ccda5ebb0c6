"""Receiving an upload's body below ASGI: the app takes the socket over for the body's length.

Through ASGI every ~64 KiB of a body costs uvloop a bytes object, httptools another, uvicorn a
bytearray append and a `bytes()` copy, then a message dict, an event and an await: taking the
body below it cut a 1 GiB PUT from 1.6-1.8 to 1.3-1.45 s of server CPU (8 MiB Dropzone chunks:
2.3-2.4 to 1.8), before any byte is written or hashed differently. For a body with a
Content-Length, the request's handler may instead ask for the rest of the body here: the
transport's protocol becomes a `BufferedProtocol` whose `get_buffer` hands the kernel fresh
buffers of up to 1 MiB (`recv_into`: one copy, from the socket to the buffer the disk write and
the hash then read). It never asks for a byte past the body, so a pipelined next request stays in
the socket; when the last byte is in, the HTTP protocol gets the transport back with a fresh
parser and the request is marked complete, and keep-alive goes on as before.

What ASGI did for the body, this does too: `Expect: 100-continue` is answered when the body is
taken; a sender silent for `idle` seconds is cut off with one timer per body (not one per
piece); `check(size)` (the rate floor) may refuse as bytes arrive; a dropped connection raises
`ClientDisconnect` and uvicorn learns of it as before. A handler that stops reading mid-body
(413, 408, an error) leaves the connection to close after its answer: the bytes still on their
way can't be told from a next request.

Every byte that arrived reaches the handler: when the body is cut, stalls or falls under the rate
floor, or the handler is cancelled while it waits, the partly filled buffer is handed over first
and the error raised after it (tus counts a cut body's bytes, and resumes from them). A slow
sender's partial buffer doesn't wait for the rest either: a handler waiting for bytes gets what
arrived once no buffer has filled for a tick (`FLUSH_SECONDS`), as tusd writes each read as it
comes, so a tus upload's saved offset keeps up with a trickle. A fast body fills its buffers well
within a tick and never pays for this.

A buffer is refilled only once nothing else refers to it (CPython's reference count: every
view, every `Py_buffer` a writer or hasher thread holds, counts), so a handler or the sink's
threads may keep views of it for as long as they like; a fresh 1 MiB bytearray per MiB cost
~0.08 s/GiB in page faults and zeroing. Their size shrinks with the number of bodies being
taken at once (`BUDGET_BYTES`), and a reader stops reading while one full buffer waits for its
handler, so memory stays bounded with many slow consumers.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, Protocol

from starlette.requests import ClientDisconnect

TAKE_BODY = "pyfiledrop.take_body"  # scope["extensions"] key: offered by the HTTP protocol
COUNT_IN = "pyfiledrop.count_in"  # scope["extensions"] key: the access log's byte counter
BUFFER_BYTES = 1024 * 1024
MIN_BUFFER_BYTES = 64 * 1024
BUDGET_BYTES = 8 * 1024 * 1024  # what all readers' buffers together aim to stay under
READY_BUFFERS = 1  # full buffers waiting for the handler before reading pauses
POOL_BYTES = 8 * 1024 * 1024  # buffers kept for reuse, all readers together, when few read
# Full buffers alive per reader while its body streams: the one filling, one ready, and the
# sink's batch being gathered and in flight (4 bodies at once held 13). A smaller pool made
# every few MiB a fresh 1 MiB bytearray: zeroed and faulted in on the event loop.
POOL_BUFFERS_PER_READER = 4
# From this many bodies at once no full-size buffer is handed out (buffer_bytes), so the pool's
# unused ones are let go: kept from a burst's first bodies, they held 3-7 MiB of its peak. Well
# above four, so the bodies of one upload coming and going don't drop and refill the pool.
POOL_IDLE_READERS = 16
# A handler waiting this long (up to twice) for a buffer to fill gets the part that arrived.
FLUSH_SECONDS = 0.25

Buffer = bytes | bytearray
Check = Callable[[int], None]


class Stalled(Exception):
    """The sender sent nothing for `idle` seconds."""


class HttpSide(Protocol):
    """What the reader needs from the HTTP protocol it stands in for."""

    def connection_lost(self, exc: Exception | None) -> None: ...
    def eof_received(self) -> bool | None: ...
    def pause_writing(self) -> None: ...
    def resume_writing(self) -> None: ...
    def body_taken_back(self) -> None: ...
    def body_abandoned(self) -> None: ...


class _Readers:
    """The readers of this process: how many, and their buffers kept for reuse (one event loop
    per process touches these)."""

    active = 0
    pool: list[bytearray] = []  # noqa: RUF012  (replaced as a whole)

    @classmethod
    def buffer_bytes(cls) -> int:
        return max(MIN_BUFFER_BYTES, min(BUFFER_BYTES, BUDGET_BYTES // (2 * max(1, cls.active))))

    @classmethod
    def free_buffer(cls, size: int) -> bytearray:
        """A pooled full-size buffer nobody refers to any more, else a new one. Smaller ones
        (many bodies at once) come from malloc's free lists cheaply; scanning a pool of them
        for every buffer cost more than it saved."""
        if size != BUFFER_BYTES:
            if cls.pool and cls.active >= POOL_IDLE_READERS:
                pool = cls.pool
                # 2: the pool's reference and getrefcount's argument; nothing else holds it.
                cls.pool = [pool[i] for i in range(len(pool)) if sys.getrefcount(pool[i]) > 2]
            return bytearray(size)
        pool = cls.pool
        for index in range(len(pool)):
            # 2: the pool's reference and getrefcount's argument; nothing else holds it.
            if sys.getrefcount(pool[index]) == 2:
                return pool[index]
        buffer = bytearray(size)
        cls.pool = [*pool[max(0, len(pool) + 1 - cls.pool_buffers()) :], buffer]
        return buffer

    @classmethod
    def pool_buffers(cls) -> int:
        """How many full-size buffers the pool keeps: what the readers now at work use."""
        return max(POOL_BYTES // BUFFER_BYTES, POOL_BUFFERS_PER_READER * cls.active)

    @classmethod
    def leave(cls) -> None:
        """A reader is done. Once none is left the pool shrinks back to POOL_BYTES; not before:
        chunks in flight come and go one by one, and shrinking it as each one ended made the
        next one allocate again."""
        cls.active -= 1
        excess = len(cls.pool) - cls.pool_buffers()
        if cls.active == 0 and excess > 0:
            cls.pool = cls.pool[excess:]


class BodyReader(asyncio.BufferedProtocol):
    """Stands in for the HTTP protocol on the transport until `remaining` bytes have come."""

    def __init__(
        self,
        http: HttpSide,
        transport: asyncio.Transport,
        remaining: int,
        idle: float,
        check: Check,
        count: Callable[[int], None] | None,
    ) -> None:
        self.http = http
        self.transport = transport
        self.remaining = remaining
        self.idle = idle
        self.check = check
        self.count = count
        self.loop = asyncio.get_running_loop()
        self.ready: deque[Buffer] = deque()
        self.current: bytearray | None = None
        self.filled = 0
        self.paused = False
        self.done = False  # every byte of the body is in
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.flush_timer: asyncio.TimerHandle | None = None
        self.handed = 0  # buffers handed over so far, whole or in part
        self.handed_at_tick = 0
        self.counted = False

    # asyncio.BufferedProtocol, called by the transport.
    def get_buffer(self, sizehint: int) -> memoryview:
        if self.current is None:
            self.current = _Readers.free_buffer(min(_Readers.buffer_bytes(), self.remaining))
            self.filled = 0
        return memoryview(self.current)[self.filled :]

    def buffer_updated(self, nbytes: int) -> None:
        assert self.current is not None
        self.filled += nbytes
        self.remaining -= nbytes
        self.last = self.loop.time()
        if self.count is not None:
            self.count(nbytes)
        try:
            self.check(nbytes)
        except Exception as error:  # the rate floor: the handler raises it
            self._fail(error)
            return
        if self.filled == len(self.current):
            self.ready.append(self.current)
            self.current = None
            self.handed += 1
            if self.remaining == 0:
                self.done = True
                self._pause()
                self.loop.call_soon(self._give_back)
            elif len(self.ready) >= READY_BUFFERS and self.waiter is None:
                self._pause()  # a handler already waiting takes it in this loop turn
            self._wake()

    def eof_received(self) -> bool | None:
        return self.http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self._fail(ClientDisconnect())
        self.http.connection_lost(exc)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()

    # The handler's side.
    async def pieces(self, hand_over: Callable[[], bytes]) -> AsyncGenerator[Buffer, None]:
        """The body: what came with the head (`hand_over` returns it as it makes this reader
        the transport's protocol, on the first step, so a body never read is never taken), then
        each buffer as it fills."""
        first = hand_over()
        self.last = self.loop.time()
        _Readers.active += 1
        self.counted = True
        if self.count is not None and first:
            self.count(len(first))
        try:
            if first:
                try:
                    self.check(len(first))
                except Exception as error:
                    self.error = error
                yield first  # arrived: the handler counts it even when the check refused it
                if self.error is not None:
                    raise self.error
            self._arm_timer()
            self.flush_timer = self.loop.call_later(FLUSH_SECONDS, self._tick)
            while True:
                if self.ready:
                    piece = self.ready.popleft()
                    if self.paused and not self.done and self.error is None:
                        self._resume()
                    yield piece
                elif self.error is not None:
                    raise self.error
                elif self.done:
                    return
                else:
                    stopped = await self._wait()
                    if stopped is not None:
                        while self.ready:
                            yield self.ready.popleft()
                        raise stopped
        finally:
            self._close()

    async def _wait(self) -> asyncio.CancelledError | None:
        """Wait for a buffer, the body's end or an error. When the handler is cancelled (tus:
        another request takes the upload over), what arrived goes first, then the cancellation:
        returned with the buffers ready, for `pieces` to yield and raise."""
        self.waiter = self.loop.create_future()
        try:
            await self.waiter
        except asyncio.CancelledError as cancelled:
            if not self._hand_partial() and not self.ready:
                raise
            return cancelled
        finally:
            self.waiter = None
        return None

    def _give_back(self) -> None:
        if self.transport.get_protocol() is self and not self.transport.is_closing():
            self.transport.set_protocol(self.http)  # type: ignore[arg-type]
            self.http.body_taken_back()
            self.transport.resume_reading()

    def _close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.flush_timer is not None:
            self.flush_timer.cancel()
            self.flush_timer = None
        if self.counted:
            self.counted = False
            _Readers.leave()
        if not self.done:
            # Stopped mid-body: what follows in the socket is this body's rest, not a request.
            self.error = self.error or ClientDisconnect()
            self._pause()
            self.http.body_abandoned()
        self.ready.clear()
        self.current = None

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self._hand_partial()  # what arrived before the cut goes first, then the error
            self.error = error
        self._pause()
        self._wake()

    def _hand_partial(self) -> bool:
        """The bytes in the buffer being filled, as a piece of their own: a copy, so the buffer
        can go back to the pool. The next one is sized for the rest of the body (a buffer never
        reaches past the body, and a full one is its end)."""
        if self.current is None or not self.filled:
            return False
        self.ready.append(self.current[: self.filled])
        self.current = None
        self.handed += 1
        return True

    def _tick(self) -> None:
        """A waiting handler gets the partial buffer when no buffer was handed over for a tick."""
        self.flush_timer = self.loop.call_later(FLUSH_SECONDS, self._tick)
        waiting = self.waiter is not None and self.error is None
        if waiting and self.handed == self.handed_at_tick and self._hand_partial():
            self._wake()
        self.handed_at_tick = self.handed

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            if not self.transport.is_closing():
                self.transport.pause_reading()

    def _resume(self) -> None:
        self.paused = False
        self.last = self.loop.time()  # waiting for the handler is not the sender's silence
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        self.waiter = None  # one buffer for a waiting handler; the next one pauses reading

    def _arm_timer(self) -> None:
        self.timer = self.loop.call_at(self.last + self.idle, self._check_idle)

    def _check_idle(self) -> None:
        self.timer = None
        if self.done or self.error is not None:
            return
        if not self.paused and self.loop.time() - self.last >= self.idle:
            self._fail(Stalled(f"the request body stalled for {self.idle:.0f} s"))
            return
        if self.paused:
            self.last = self.loop.time()
        self._arm_timer()


def take_body(
    scope: Mapping[str, Any], idle: float, check: Check
) -> AsyncGenerator[Buffer, None] | None:
    """The rest of this request's body read straight from the socket, or None when that can't
    be done (no real connection, a chunked body, a pipelined request already parsed past it, the
    body already whole): read it through ASGI then."""
    offer: Callable[
        [float, Check, Callable[[int], None] | None], AsyncGenerator[Buffer, None] | None
    ]
    extensions = scope.get("extensions", {})
    offer = extensions.get(TAKE_BODY)
    if offer is None:
        return None
    return offer(idle, check, extensions.get(COUNT_IN))


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The one Content-Length of a body without Transfer-Encoding, else None."""
    lengths = [value for name, value in headers if name == b"content-length"]
    if len(lengths) != 1 or any(name == b"transfer-encoding" for name, _ in headers):
        return None
    value = lengths[0].strip()
    if not value.isdigit() or len(value) > 20:
        return None
    return int(value)
