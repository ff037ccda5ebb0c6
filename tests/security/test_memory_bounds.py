"""Parts after the file part, and bodies that go on after it (chunked, so no Content-Length caps
them), are refused early: the server's memory stays flat."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Server
from tests.dz import chunk_fields
from tests.rawhttp import head, multipart, part, stream_until_answered

MiB = 1024 * 1024
TRAILING_MIB = 96  # what an attacker sends after a 1000-byte chunk
GROWTH_ALLOWED_KIB = 24 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield b"%x\r\n" % len(piece) + piece + b"\r\n"
    yield b"0\r\n\r\n"


def trailing_parts(total: int) -> Iterator[bytes]:
    """Many small fields of one name: a server that notes each part's name keeps them all."""
    block = part("note", b"v", "rawb0undary") * 4000
    for _ in range(total // len(block)):
        yield block


def chunk_prefix() -> bytes:
    fields = list(chunk_fields(str(uuid.uuid4()), 0, 1000, 1000).items())
    return multipart(fields, "a.bin", bytes(1000)).rsplit(b"--rawb0undary--", 1)[0]


def test_parts_after_the_file_part_are_capped_and_memory_stays_flat(server: Server) -> None:
    before = rss_kib(server.pid)
    request_head = head(
        "POST",
        "/upload",
        {
            "Content-Type": "multipart/form-data; boundary=rawb0undary",
            "Transfer-Encoding": "chunked",
        },
    )
    pieces = chunked(iter([chunk_prefix(), *trailing_parts(TRAILING_MIB * MiB)]))
    result = stream_until_answered(server.port, request_head, pieces, timeout=60)
    assert result.response is not None
    assert result.response.status in (400, 413), result.response.body
    assert result.response.header("connection") == "close"
    assert result.sent_when_answered < 32 * MiB
    assert rss_kib(server.pid) - before < GROWTH_ALLOWED_KIB
    assert server.stored_files() == []


@pytest.mark.parametrize("kind", ["chunk", "one-shot"])
def test_a_body_going_on_after_its_closing_boundary_is_cut_off(server: Server, kind: str) -> None:
    fields = list(chunk_fields(str(uuid.uuid4()), 0, 1000, 1000).items()) if kind == "chunk" else []
    body = multipart(fields, "a.bin", bytes(1000))
    request_head = head(
        "POST",
        "/upload",
        {
            "Content-Type": "multipart/form-data; boundary=rawb0undary",
            "Transfer-Encoding": "chunked",
        },
    )
    epilogue = (bytes(MiB) for _ in range(256))
    result = stream_until_answered(
        server.port, request_head, chunked(iter([body, *epilogue])), timeout=60
    )
    assert result.response is not None
    assert result.response.status == 413, result.response.body
    assert result.sent_when_answered < 64 * MiB


def test_a_long_preamble_without_a_file_is_refused(server: Server) -> None:
    request_head = head(
        "POST",
        "/upload",
        {
            "Content-Type": "multipart/form-data; boundary=rawb0undary",
            "Transfer-Encoding": "chunked",
        },
    )
    fields = (part("dzuuid", b"x" * 100, "rawb0undary") * 1000 for _ in range(1000))
    result = stream_until_answered(server.port, request_head, chunked(fields), timeout=60)
    assert result.response is not None
    assert result.response.status == 413, result.response.body
    assert result.sent_when_answered < 32 * MiB
