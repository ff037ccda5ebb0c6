"""Bounds on the request head that uvicorn's httptools protocol lacks: its size and its time.

httptools buffers header lines without limit, and uvicorn starts no timer until a first response
(the keep-alive timeout), so without these one client could hold memory (a 64 MiB header value
costs 64 MiB) or a connection forever (a request line sent a byte a minute). h11, uvicorn's
other protocol, has a size limit but is 2-3 times slower on the upload path (docs/ARCHITECTURE.md).

And a bound on what a head's read brings of the body behind it. uvloop reads up to 256 KiB at a
time for a plain protocol, so an upload's head came with ~250 KiB of its body, held by uvicorn
until the handler took the body over: with 128 chunk requests starting at once that was ~30 MiB
of the server's peak. Here the transport reads into one reused buffer per thread, at most
`HEAD_READ_BYTES` while a head is expected, and reading pauses once a body is offered to its
handler, so the rest waits in the socket until the handler reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from pyfiledrop.web.body_takeover import TAKE_BODY, BodyReader, Buffer, Check, content_length

MAX_HEAD_BYTES = 64 * 1024  # request line and headers; browsers send a few KiB
# From the connection, or the first byte of a request, to the blank line ending its head.
HEAD_TIMEOUT_SECONDS = 20.0
# A read where a request head is expected: a few heads, little of a body behind them.
HEAD_READ_BYTES = 16 * 1024
# A read inside a body uvicorn reads (through ASGI): uvloop's own size for a plain protocol.
BODY_READ_BYTES = 256 * 1024

_read_buffers = threading.local()  # one per event loop: a read is filled and parsed in one go


def _answer(status: bytes, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
        b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's `http=` protocol: httptools (uvicorn[standard]), with the head bounded, and an
    upload's body offered to its handler straight from the socket (body_takeover.py)."""

    _in_head = True
    _head_bytes = 0  # bytes received while the head is incomplete (a head that never ends)
    _head_size = 0  # the parsed request line and headers (a head that came whole in one read)
    _head_timer: asyncio.TimerHandle | None = None
    _refused = False
    _cycles: list[RequestResponseCycle] = []  # noqa: RUF012  (replaced, never mutated)
    _body_seen = 0  # body bytes of the current request the parser has passed on
    _taken: RequestResponseCycle | None = None  # the request whose body a BodyReader reads
    in_body = False  # between a head and the end of its body (reads may be large there)
    outer: HttpConnection | None = None  # what the transport calls, when not this itself

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes | memoryview) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)  # type: ignore[arg-type]  # any buffer
        if self._in_head and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(b"431 Request Header Fields Too Large", "request head too large")
        if self.transport.is_closing():
            # uvicorn answered a malformed follow-up request with 400 and closed the connection
            # while the request before it is still being handled: its answer can't be sent.
            self._drop_answer()

    def eof_received(self) -> None:
        # The client half-closed: the transport closes when this returns, but uvicorn learns it
        # only in connection_lost, a loop turn later.
        self._drop_answer()

    def _drop_answer(self) -> None:
        """The in-flight request's answer has nowhere to go: without this, writing it raised in
        uvloop (a logged "unexpected error" per such client, found by the fuzzer)."""
        # Pipelined requests each have a cycle; `self.cycle` is only the newest.
        for cycle in self._cycles:
            if not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._cycles = []

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes, self._head_size = True, 0, 0
        self.in_body = False
        self._body_seen = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes = False, 0
        self._disarm_head_timer()
        if self._refused or self._head_size > MAX_HEAD_BYTES:
            self._refuse(b"431 Request Header Fields Too Large", "request head too large")
            return  # the request never reaches the app
        super().on_headers_complete()
        self.in_body = True
        if self.cycle is not None:
            self._cycles = [c for c in self._cycles if not c.response_complete] + [self.cycle]
            if self.cycle.scope is self.scope:
                self._offer_body(self.cycle)

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            self._body_seen += len(body)
            super().on_body(body)

    def _offer_body(self, cycle: RequestResponseCycle) -> None:
        length = content_length(self.headers)
        if length is None or not length or self.scope["method"] not in ("PUT", "POST", "PATCH"):
            return
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[TAKE_BODY] = functools.partial(self._take_body, cycle, length)
        # The body stays in the socket until the handler takes it or reads it through ASGI
        # (uvicorn's `receive` resumes reading, as does the end of its answer).
        self.flow.pause_reading()

    def _take_body(
        self,
        cycle: RequestResponseCycle,
        length: int,
        idle: float,
        check: Check,
        count: Callable[[int], None] | None,
    ) -> AsyncGenerator[Buffer, None] | None:
        """The rest of `cycle`'s body from a BodyReader, if the parser is still inside it."""
        remaining = length - self._body_seen
        if (
            self.cycle is not cycle  # a pipelined request was parsed after it: body complete
            or not cycle.more_body
            or cycle.disconnected
            or cycle.response_complete
            or remaining <= 0
            or self._taken is not None
            or self.transport.is_closing()
            or self.transport.get_protocol() is not self._protocol()
        ):
            return None
        reader = BodyReader(self._protocol(), self.transport, remaining, idle, check, count)
        return reader.pieces(functools.partial(self._hand_over, cycle, reader))

    def _protocol(self) -> HttpConnection | BoundedHttpToolsProtocol:
        """The transport's protocol while the parser reads: given back after a taken body."""
        return self if self.outer is None else self.outer

    def _hand_over(self, cycle: RequestResponseCycle, reader: BodyReader) -> bytes:
        """Give `reader` the transport (when the handler starts reading, in the same loop turn
        as the checks above); the body bytes the parser already passed on come first."""
        if cycle.waiting_for_100_continue:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            cycle.waiting_for_100_continue = False
        first, cycle.body = bytes(cycle.body), bytearray()
        self._taken = cycle
        self.transport.set_protocol(reader)
        self.flow.resume_reading()  # uvicorn's own pause, if any: the reader paces itself now
        return first

    def body_taken_back(self) -> None:
        """The reader got the whole body: this request is complete, the next one starts fresh."""
        cycle, self._taken = self._taken, None
        self.in_body = False
        self.parser = httptools.HttpRequestParser(self)
        with contextlib.suppress(AttributeError):  # as uvicorn sets it up (httptools >= 0.6.3)
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        if cycle is not None:
            cycle.more_body = False
            cycle.message_event.set()

    def body_abandoned(self) -> None:
        """The handler stopped reading mid-body: close the connection once it has answered."""
        cycle, self._taken = self._taken, None
        if cycle is None or cycle.response_complete:
            self.transport.close()
        else:
            cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self.in_body = False
        if not self._refused:
            super().on_message_complete()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head:
            self._refuse(b"408 Request Timeout", "the request head took too long")

    def _refuse(self, status: bytes, message: str) -> None:
        self._in_head, self._refused = False, True
        self._disarm_head_timer()
        if not self.transport.is_closing():
            self.transport.write(_answer(status, message))
            self.transport.close()


class HttpConnection(asyncio.BufferedProtocol):
    """The transport's protocol for an HTTP connection: reads into this thread's buffer and
    feeds `http` from it, at most `HEAD_READ_BYTES` at a time unless inside a body uvicorn
    reads. (uvloop treats a protocol that is also an `asyncio.Protocol`, as uvicorn's is, as a
    plain one: hence a protocol of its own around it.)"""

    def __init__(self, http: BoundedHttpToolsProtocol) -> None:
        self.http = http
        http.outer = self
        buffer: memoryview | None = getattr(_read_buffers, "view", None)
        if buffer is None:
            buffer = _read_buffers.view = memoryview(bytearray(BODY_READ_BYTES))
        self.buffer = buffer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.http.connection_made(transport)  # type: ignore[arg-type]

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer if self.http.in_body else self.buffer[:HEAD_READ_BYTES]

    def buffer_updated(self, nbytes: int) -> None:
        self.http.data_received(self.buffer[:nbytes])

    def eof_received(self) -> None:
        self.http.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.http.connection_lost(exc)

    def pause_writing(self) -> None:
        self.http.pause_writing()

    def resume_writing(self) -> None:
        self.http.resume_writing()

    # body_takeover.HttpSide: a BodyReader gives the transport back to this.
    def body_taken_back(self) -> None:
        self.http.body_taken_back()

    def body_abandoned(self) -> None:
        self.http.body_abandoned()


def http_protocol(**options: Any) -> HttpConnection:
    """uvicorn's `http=`: called with its protocol class's keyword arguments per connection."""
    return HttpConnection(BoundedHttpToolsProtocol(**options))
