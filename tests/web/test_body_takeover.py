"""An upload's body read straight from the socket (web/body_takeover.py), over real sockets:
keep-alive and pipelining after it, bytes that came with the head, a cut body, the idle timeout,
the rate floor, an over-long body, and `Expect: 100-continue`; every byte that arrived reaches
the handler before a cut, a stall or a refusal, and a slow sender's bytes don't wait for a
buffer to fill."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

import pyfiledrop.protocols.body as body_module
import pyfiledrop.web.body_takeover as body_takeover
import pyfiledrop.web.http_limits as http_limits
from pyfiledrop.errors import PyfiledropError
from pyfiledrop.protocols.body import RateFloor, body_pieces
from pyfiledrop.web.app import create_app
from pyfiledrop.web.body_takeover import BodyReader
from pyfiledrop.web.errors import status_of
from tests.conftest import uvicorn_in_thread
from tests.dz import chunk_fields
from tests.harness import settings_in
from tests.rawhttp import RawResponse, head, multipart, read_response, stream_until_answered

MiB = 1024 * 1024
BODY = os.urandom(8 * MiB + 12345)  # not a multiple of any buffer size


@pytest.fixture
def taken(monkeypatch: pytest.MonkeyPatch) -> list[BodyReader]:
    """Every BodyReader the server makes: proof that a body was taken, not read through ASGI."""
    readers: list[BodyReader] = []

    class Recorded(BodyReader):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            readers.append(self)

    monkeypatch.setattr(http_limits, "BodyReader", Recorded)
    return readers


@contextlib.contextmanager
def serving(root: Path, **overrides: Any) -> Iterator[int]:
    """The app under uvicorn (uvloop, our protocol) in this process, on a free port."""
    with running(create_app(settings_in(root, min_free=0, **overrides))) as port:
        yield port


@contextlib.contextmanager
def running(app: Any) -> Iterator[int]:
    with uvicorn_in_thread(app) as port:
        yield port


def put(name: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    return head("PUT", f"/put/{name}", headers, len(body)) + body


def read_responses(sock: socket.socket, count: int, timeout: float = 20) -> list[RawResponse]:
    """`count` Content-Length framed responses from one connection, in order."""
    sock.settimeout(timeout)
    data, responses = b"", []
    deadline = time.monotonic() + timeout
    while len(responses) < count and time.monotonic() < deadline:
        if b"\r\n\r\n" in data:
            raw_head, _, rest = data.partition(b"\r\n\r\n")
            lines = raw_head.decode("latin-1").split("\r\n")
            fields = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            length = int(fields.get("content-length", "0"))
            if len(rest) >= length:
                response = RawResponse(int(lines[0].split()[1]), list(fields.items()))
                response.body, data = rest[:length], rest[length:]
                responses.append(response)
                continue
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return responses


def stored(root: Path) -> list[bytes]:
    return sorted(path.read_bytes() for path in (root / "storage").iterdir())


def test_two_puts_on_one_connection_keep_alive_after_a_taken_body(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        for name in ("one.bin", "two.bin"):
            sock.sendall(put(name, BODY))
            [response] = read_responses(sock, 1)
            assert response.status == 201, response.body
            assert json.loads(response.body)["sha256"] == hashlib.sha256(BODY).hexdigest()
    assert len(taken) == 2
    assert stored(tmp_path) == [BODY, BODY]


def test_pipelined_requests_after_a_taken_body_are_answered_in_order(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    small = b"the next request's body"
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        # One send: the second head sits right behind the first body in the socket.
        sock.sendall(put("big.bin", BODY) + put("small.bin", small) + head("GET", "/healthz"))
        responses = read_responses(sock, 3)
    assert [r.status for r in responses] == [201, 201, 200]
    assert [json.loads(r.body)["size"] for r in responses[:2]] == [len(BODY), len(small)]
    assert len(taken) == 1  # the small body came whole with its head
    assert stored(tmp_path) == sorted([BODY, small])


def test_bytes_that_came_with_the_head_start_the_body(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    request = put("with-head.bin", BODY)
    split = len(request) - len(BODY) + 100_000  # the head and 100 kB of body in one packet
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request[:split])
        sock.sendall(request[split:])
        [response] = read_responses(sock, 1)
    assert response.status == 201
    assert len(taken) == 1
    assert stored(tmp_path) == [BODY]


def test_a_body_cut_midway_aborts_the_upload(tmp_path: Path, taken: list[BodyReader]) -> None:
    with serving(tmp_path) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(put("cut.bin", BODY)[: 3 * MiB])
            deadline = time.monotonic() + 10
            while not taken and time.monotonic() < deadline:
                time.sleep(0.01)  # polling for the server to take the body, not a fixed wait
        deadline = time.monotonic() + 10
        while list((tmp_path / "chunks").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
        # The server goes on serving: its next upload on a new connection is whole.
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(put("after.bin", BODY))
            [response] = read_responses(sock, 1)
    assert len(taken) == 2
    assert list((tmp_path / "chunks").iterdir()) == []  # the cut PUT's partial is gone
    assert response.status == 201
    assert stored(tmp_path) == [BODY]  # nothing of the cut one was published


def test_expect_100_continue_is_answered_when_the_body_is_taken(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    request_head = head("PUT", "/put/expect.bin", {"Expect": "100-continue"}, len(BODY))
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request_head)
        sock.settimeout(10)
        interim = sock.recv(1024)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(BODY)
        [response] = read_responses(sock, 1)
    assert response.status == 201
    assert len(taken) == 1
    assert stored(tmp_path) == [BODY]


def test_a_stalled_taken_body_is_cut_off_by_the_idle_timeout(
    tmp_path: Path, taken: list[BodyReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body_module, "MIN_IDLE_SECONDS", 1.0)  # in production: at least 30 s
    with (
        serving(tmp_path, timeout=500) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        started = time.monotonic()
        sock.sendall(put("stalled.bin", BODY)[: 2 * MiB])
        response = read_response(sock, timeout=10)
        waited = time.monotonic() - started
    assert response is not None and response.status == 400
    assert "stalled" in response.json()["error"]
    assert 0.9 < waited < 5
    assert len(taken) == 1
    assert stored(tmp_path) == []


def test_a_taken_body_slower_than_the_floor_is_refused_with_408(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(200):
            yield bytes(16 * 1024)
            time.sleep(0.02)  # pacing the sender at ~800 kB/s, under the floor

    with serving(tmp_path, min_rate=4 * MiB, min_rate_window=1) as port:
        started = time.monotonic()
        result = stream_until_answered(
            port, head("PUT", "/put/slow.bin", length=64 * MiB), trickle()
        )
    assert result.response is not None and result.response.status == 408, result.response
    assert time.monotonic() - started < 4
    assert len(taken) == 1
    assert stored(tmp_path) == []


def test_a_taken_chunk_body_longer_than_its_chunk_is_refused_early(
    tmp_path: Path, taken: list[BodyReader]
) -> None:
    upload_id = str(uuid.uuid4())
    fields = list(chunk_fields(upload_id, 0, MiB, 2 * MiB).items())
    prefix = multipart(fields, "big.bin", b"").rsplit(b"\r\n--rawb0undary--", 1)[0]
    headers = {"Content-Type": "multipart/form-data; boundary=rawb0undary"}
    request_head = head("POST", "/upload", headers, 256 * MiB)
    pieces = iter([prefix, *(bytes(MiB) for _ in range(256))])
    with serving(tmp_path) as port:
        result = stream_until_answered(port, request_head, pieces)
    assert result.response is not None and result.response.status == 413
    assert result.sent_when_answered < 32 * MiB
    assert result.response.header("connection") == "close"
    assert stored(tmp_path) == []


def test_a_chunked_body_is_read_through_asgi(tmp_path: Path, taken: list[BodyReader]) -> None:
    framed = b"".join(
        b"%x\r\n" % len(BODY[i : i + MiB]) + BODY[i : i + MiB] + b"\r\n"
        for i in range(0, len(BODY), MiB)
    )
    request = (
        head("PUT", "/put/chunked.bin", {"Transfer-Encoding": "chunked"}) + framed + b"0\r\n\r\n"
    )
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(request)
        [response] = read_responses(sock, 1)
    assert response.status == 201
    assert taken == []
    assert stored(tmp_path) == [BODY]


def test_a_buffer_is_refilled_only_once_nothing_refers_to_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readers = body_takeover._Readers
    monkeypatch.setattr(readers, "pool", [])
    size = body_takeover.BUFFER_BYTES
    first = readers.free_buffer(size)
    view = memoryview(first)[10:20]  # e.g. a batch waiting for its write, or a hasher
    del first
    second = readers.free_buffer(size)
    assert second is not view.obj
    del second
    held = view.obj
    del view
    assert readers.free_buffer(size) is not held  # `held` still refers to it
    del held
    assert readers.free_buffer(size) is readers.pool[0]  # released: reused, not allocated
    assert len(readers.pool) == 2


def test_the_pool_keeps_pool_bytes_of_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once filled, the pool holds POOL_BYTES of buffers (it kept only about half: a negative
    slice start dropped the older ones as it grew), so a body reuses them all."""
    readers = body_takeover._Readers
    monkeypatch.setattr(readers, "pool", [])
    monkeypatch.setattr(readers, "active", 1)
    size = body_takeover.BUFFER_BYTES
    first = [readers.free_buffer(size) for _ in range(body_takeover.POOL_BYTES // size)]
    assert list(map(id, readers.pool)) == list(map(id, first))
    del first
    assert len(readers.pool) == body_takeover.POOL_BYTES // size


def test_the_pool_keeps_what_the_readers_at_work_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four bodies at once hold more than POOL_BYTES of full buffers (filling, ready, the sink's
    batches): all of them are reused, none allocated afresh, until the readers are done."""
    readers = body_takeover._Readers
    monkeypatch.setattr(readers, "pool", [])
    monkeypatch.setattr(readers, "active", 4)
    size = body_takeover.BUFFER_BYTES
    held = 4 * body_takeover.POOL_BUFFERS_PER_READER
    assert held * size > body_takeover.POOL_BYTES
    first = [readers.free_buffer(size) for _ in range(held)]
    assert list(map(id, readers.pool)) == list(map(id, first))
    del first
    again = [readers.free_buffer(size) for _ in range(held)]
    assert list(map(id, again)) == list(map(id, readers.pool))  # reused, none allocated
    del again
    for _ in range(3):
        readers.leave()
    assert len(readers.pool) == held  # the next chunk of an upload comes along shortly
    readers.leave()
    assert len(readers.pool) == body_takeover.POOL_BYTES // size


class Consumer:
    """A handler that records what body_pieces gives it: each piece, then the error ending it."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.pieces: list[bytes] = []
        self.error: str | None = None
        self.app = Starlette(routes=[Route("/body", self.take, methods=["PUT"])])

    async def take(self, request: Request) -> Response:
        try:
            async for piece in body_pieces(request, self.idle):
                self.pieces.append(bytes(piece))
        except (ClientDisconnect, PyfiledropError) as error:
            self.error = type(error).__name__
            status = status_of(error) if isinstance(error, PyfiledropError) else 400
            return PlainTextResponse(str(error), status_code=status)
        return PlainTextResponse(str(self.received()))

    def received(self) -> int:
        return sum(len(piece) for piece in self.pieces)

    def wait_for(self, ready: Callable[[], bool], seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            assert time.monotonic() < deadline, f"{self.received()} bytes, error {self.error}"
            time.sleep(0.01)  # polling the handler's progress, not a fixed wait


CUT = 3 * MiB + 54321  # not a multiple of any buffer size, nor of the pieces sent


def test_a_taken_body_cut_midway_hands_over_every_byte_before_the_disconnect(
    taken: list[BodyReader],
) -> None:
    consumer = Consumer(idle=30)
    with running(consumer.app) as port:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(head("PUT", "/body", None, len(BODY)) + BODY[:CUT])
        consumer.wait_for(lambda: consumer.error is not None)
    assert consumer.error == "ClientDisconnect"
    assert b"".join(consumer.pieces) == BODY[:CUT]
    assert len(taken) == 1


def test_a_stalled_taken_body_hands_over_every_byte_before_the_timeout(
    taken: list[BodyReader],
) -> None:
    consumer = Consumer(idle=1.0)
    with (
        running(consumer.app) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(head("PUT", "/body", None, len(BODY)) + BODY[:CUT])
        response = read_response(sock, timeout=10)
    assert response is not None and response.status == 400
    assert consumer.error == "Invalid"
    assert b"".join(consumer.pieces) == BODY[:CUT]
    assert len(taken) == 1


def test_a_taken_body_under_the_rate_floor_hands_over_what_arrived_before_the_408(
    taken: list[BodyReader], monkeypatch: pytest.MonkeyPatch
) -> None:
    counted: list[int] = []

    class Counted(RateFloor):
        def check(self, received: int) -> None:
            counted.append(received)  # what arrived, as the reader saw it
            super().check(received)

    monkeypatch.setattr(RateFloor, "of", classmethod(lambda cls, request: Counted(10 * MiB, 0.5)))
    consumer = Consumer(idle=30)

    def trickle() -> Iterator[bytes]:
        yield BODY[:CUT]
        for start in range(CUT, len(BODY), 16 * 1024):
            time.sleep(0.05)  # pacing the sender under the floor
            yield BODY[start : start + 16 * 1024]

    with running(consumer.app) as port:
        result = stream_until_answered(port, head("PUT", "/body", None, len(BODY)), trickle())
    assert result.response is not None and result.response.status == 408
    assert consumer.error == "TooSlow"
    assert b"".join(consumer.pieces) == BODY[: sum(counted)]
    assert sum(counted) > CUT
    assert len(taken) == 1


@pytest.mark.parametrize("length", [len(BODY), 500_000])  # the rest: many buffers, or part of one
def test_a_slow_senders_bytes_reach_the_handler_without_waiting_for_a_full_buffer(
    taken: list[BodyReader], length: int
) -> None:
    first = 300_001  # well under a buffer
    consumer = Consumer(idle=30)
    with (
        running(consumer.app) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(head("PUT", "/body", None, length) + BODY[:first])
        consumer.wait_for(lambda: consumer.received() == first, seconds=3)
        assert consumer.error is None
        sock.sendall(BODY[first:length] + head("GET", "/body"))  # and a pipelined request
        responses = read_responses(sock, 2)
    assert [response.status for response in responses] == [200, 405]
    assert b"".join(consumer.pieces) == BODY[:length]
    assert len(taken) == 1
    if length > 2 * body_takeover.BUFFER_BYTES:  # once the sender kept up, buffers filled whole
        assert max(len(piece) for piece in consumer.pieces) == body_takeover.BUFFER_BYTES


def test_a_heads_read_brings_little_of_its_body_and_the_rest_waits_in_the_socket(
    taken: list[BodyReader],
) -> None:
    """What uvicorn holds of a body until its handler takes it: at most one small read's worth
    (it was a 256 KiB read, and reading went on past 64 KiB: ~30 MiB with 128 bodies)."""
    arrived = threading.Event()

    class Late(Consumer):
        async def take(self, request: Request) -> Response:
            # The whole first part is in the server's socket before the handler reads a byte.
            assert await asyncio.to_thread(arrived.wait, 10)
            return await super().take(request)

    consumer = Late(idle=30)
    sent = 400_000
    with running(consumer.app) as port, socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MiB)  # sendall won't wait
        sock.connect(("127.0.0.1", port))
        sock.sendall(head("PUT", "/body", None, len(BODY)) + BODY[:sent])
        arrived.set()
        sock.sendall(BODY[sent:])
        [response] = read_responses(sock, 1)
    assert response.status == 200
    assert b"".join(consumer.pieces) == BODY
    assert len(taken) == 1
    assert 0 < len(consumer.pieces[0]) <= http_limits.HEAD_READ_BYTES


def test_heads_longer_than_a_head_read_are_read_whole_with_pipelining_behind_them(
    tmp_path: Path,
) -> None:
    big = head("GET", "/healthz", {f"X-H{n}": "v" * 40 for n in range(1000)})  # ~50 KiB
    assert http_limits.HEAD_READ_BYTES < len(big) < http_limits.MAX_HEAD_BYTES
    with serving(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(big + put("after.bin", BODY) + big)
        responses = read_responses(sock, 3)
    assert [response.status for response in responses] == [200, 201, 200]
    assert stored(tmp_path) == [BODY]


def test_the_pool_lets_unused_full_buffers_go_when_many_bodies_are_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many bodies at once get small buffers: the full-size ones their first bodies left in the
    pool would only hold memory through the burst; one still in use stays until it is free."""
    readers = body_takeover._Readers
    monkeypatch.setattr(readers, "pool", [])
    monkeypatch.setattr(readers, "active", 1)
    size = body_takeover.BUFFER_BYTES
    kept = [readers.free_buffer(size) for _ in range(body_takeover.POOL_BYTES // size)]
    in_use = memoryview(kept[0])
    del kept
    monkeypatch.setattr(readers, "active", body_takeover.POOL_IDLE_READERS - 1)
    readers.free_buffer(body_takeover.MIN_BUFFER_BYTES)
    assert len(readers.pool) == body_takeover.POOL_BYTES // size  # a few bodies: kept
    monkeypatch.setattr(readers, "active", body_takeover.POOL_IDLE_READERS)
    assert (
        len(readers.free_buffer(body_takeover.MIN_BUFFER_BYTES)) == body_takeover.MIN_BUFFER_BYTES
    )
    assert [id(buffer) for buffer in readers.pool] == [id(in_use.obj)]
