"""protocols/body.py on its own: the rate floor, Content-Length parsing, the feeder's caps and
order, and the ASGI fallback's idle timeout."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

import pyfiledrop.protocols.body as body
from pyfiledrop.errors import Invalid, TooLarge, TooSlow
from pyfiledrop.protocols.body import ChunkFeeder, RateFloor, body_pieces, declared_length
from pyfiledrop.storage import Buffer
from pyfiledrop.uploads import ChunkPlan


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_floor_cuts_off_a_body_below_it_only_after_a_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(body.time, "monotonic", clock)
    floor = RateFloor(rate=1000, window=10.0)
    clock.now += 5
    floor.check(10)  # far below, but the window has not passed
    clock.now += 5
    with pytest.raises(TooSlow, match="below this server's floor of 1000"):
        floor.check(10)


def test_the_rate_floor_starts_a_new_window_after_a_fast_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(body.time, "monotonic", clock)
    floor = RateFloor(rate=1000, window=10.0)
    clock.now += 10
    floor.check(20_000)  # 2000 bytes/s: fine, and the count starts again
    clock.now += 10
    with pytest.raises(TooSlow):
        floor.check(9_000)  # this window alone is below the floor


def test_no_floor_when_the_rate_is_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(body.time, "monotonic", clock)
    floor = RateFloor(rate=0, window=1.0)
    clock.now += 3600
    floor.check(1)


def request_with(headers: list[tuple[bytes, bytes]], receive: Any = None) -> Request:
    app = SimpleNamespace(state=SimpleNamespace())  # no uploads: no rate floor
    scope = {"type": "http", "method": "PUT", "path": "/", "headers": headers, "app": app}
    return Request(scope, receive)


def pieces_before(
    receive: Any, idle: float, error: type[Exception], match: str
) -> list[bytes | bytearray]:
    """The pieces the ASGI fallback yields (no socket to take) before it raises `error`."""

    async def run() -> list[bytes | bytearray]:
        got = []
        with pytest.raises(error, match=match):
            async for piece in body_pieces(request_with([], receive), idle=idle):
                got.append(piece)
        return got

    return asyncio.run(run())


@pytest.mark.parametrize(("value", "expected"), [(None, None), (b"0", 0), (b"1048576", 1048576)])
def test_declared_length(value: bytes | None, expected: int | None) -> None:
    headers = [] if value is None else [(b"content-length", value)]
    assert declared_length(request_with(headers)) == expected


@pytest.mark.parametrize("value", [b"-1", b"12x", b"1" * 21, b" "])
def test_a_content_length_that_is_not_a_number_is_refused(value: bytes) -> None:
    with pytest.raises(Invalid):
        declared_length(request_with([(b"content-length", value)]))


class Sink:
    def __init__(self) -> None:
        self.pieces: list[bytes] = []

    async def write(self, data: Buffer) -> None:
        self.pieces.append(bytes(data))

    async def finish(self) -> int:
        return sum(map(len, self.pieces))

    async def abort(self) -> None:
        self.pieces.append(b"<aborted>")


def plan(sink: Sink | None, limit: int, length: int | None = None, check: Any = None) -> ChunkPlan:
    return ChunkPlan(
        upload=None,  # type: ignore[arg-type]  # the feeder never looks at it
        index=0,
        offset=0,
        length=length,
        sink=sink,
        limit=limit,
        check_stream=check,
    )


def test_the_feeder_passes_pieces_in_order_and_refuses_past_the_limit() -> None:
    sink = Sink()
    feeder = ChunkFeeder(plan(sink, limit=10, length=10))

    async def run() -> None:
        await feeder.feed(b"abcd")
        await feeder.feed(memoryview(b"efghij"))
        with pytest.raises(TooLarge, match="longer than the chunk it claims"):
            await feeder.feed(b"k")

    asyncio.run(run())
    assert sink.pieces == [b"abcd", b"efghij"]  # the piece past the limit is not written


def test_a_stream_of_unknown_length_is_checked_before_each_write() -> None:
    sink = Sink()
    seen: list[tuple[int, int]] = []

    async def check(received: int) -> None:
        seen.append((received, len(sink.pieces)))
        if received > 6:
            raise TooLarge("over the quota")

    feeder = ChunkFeeder(plan(sink, limit=100, check=check))

    async def run() -> None:
        await feeder.feed(b"abc")
        await feeder.feed(b"def")
        with pytest.raises(TooLarge, match="quota"):
            await feeder.feed(b"g")

    asyncio.run(run())
    assert seen == [(3, 0), (6, 1), (7, 2)]  # each check before its piece is written
    assert sink.pieces == [b"abc", b"def"]


def test_a_duplicate_chunk_is_counted_not_written() -> None:
    feeder = ChunkFeeder(plan(None, limit=10, length=10))

    async def run() -> None:
        await feeder.feed(b"0123456789")
        with pytest.raises(TooLarge, match="longer than the chunk"):
            await feeder.feed(b"x")

    asyncio.run(run())
    assert feeder.received == 11


def test_the_asgi_fallback_cuts_off_a_silent_body() -> None:
    """A request without a socket to take (in-process, chunked): its idle timeout still holds."""
    messages = [{"type": "http.request", "body": b"first", "more_body": True}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # a sender that never sends again
        raise AssertionError

    assert pieces_before(receive, 0.05, Invalid, "stalled") == [b"first"]


def test_the_asgi_fallback_yields_the_piece_that_met_the_rate_floor_before_the_408(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It arrived, so a handler that keeps what arrived (tus) gets to write it."""
    floor = RateFloor(10**12, 0.0)  # a window already over: any piece is too slow
    monkeypatch.setattr(RateFloor, "of", classmethod(lambda cls, request: floor))
    messages = [{"type": "http.request", "body": b"slow", "more_body": True}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    assert pieces_before(receive, 5, TooSlow, "floor") == [b"slow"]
