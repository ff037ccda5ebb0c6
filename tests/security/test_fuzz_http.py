"""A raw-socket fuzzer of malformed requests: a fixed number of seeded cases, each bounded in
time. The server never answers 5xx, never logs an unexpected error, and keeps answering."""

from __future__ import annotations

import contextlib
import random
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import Server
from tests.dz import chunk_fields
from tests.rawhttp import RawResponse, head, multipart, read_response

SEED = 6
CASES = 160
CASE_TIMEOUT = 2.0
CT = "Content-Type"
MULTIPART = "multipart/form-data; boundary=rawb0undary"


def valid_chunk(rng: random.Random) -> tuple[bytes, bytes]:
    size = rng.choice([0, 1, 10, 1000, 70_000])
    chunk = rng.choice([1, 7, 1000, 65_536])
    count = max(1, -(-size // chunk))
    index = rng.randrange(count)
    fields = chunk_fields(str(uuid.uuid4()), index, chunk, size)
    length = max(0, min(chunk, size - index * chunk))
    body = multipart(list(fields.items()), "fuzz.bin", rng.randbytes(length))
    return head("POST", "/upload", {CT: MULTIPART}, len(body)), body


def mutate(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        position = rng.randrange(len(data) + 1)
        action = rng.randrange(4)
        if action == 0 and data:
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif action == 1:
            data[position:position] = rng.choice(
                [b"\r\n", b"--", b"--rawb0undary", b'"', b"\x00", b";", b"\r\n\r\n", b"\xff" * 3]
            )
        elif action == 2:
            del data[position : position + rng.randint(1, 40)]
        else:
            data[position:position] = data[max(0, position - 30) : position]
    return bytes(data)


def case_broken_boundary(rng: random.Random) -> list[bytes]:
    request_head, body = valid_chunk(rng)
    other = rng.choice(
        ["", "boundary=", "boundary=x" * 40, "boundary=other", 'boundary="unterminated']
    )
    request_head = request_head.replace(b"boundary=rawb0undary", other.encode())
    return [request_head + body]


def case_truncated(rng: random.Random) -> list[bytes]:
    request_head, body = valid_chunk(rng)
    return [request_head + body[: rng.randrange(len(body) + 1)]]  # then the socket half-closes


def case_lying_length(rng: random.Random) -> list[bytes]:
    request_head, body = valid_chunk(rng)
    claimed = rng.choice([0, 1, len(body) // 2, len(body) - 1, len(body) + 1, 10**12, -5])
    request_head = request_head.replace(
        f"Content-Length: {len(body)}".encode(), f"Content-Length: {claimed}".encode()
    )
    return [request_head + body + rng.choice([b"", b"GARBAGE", b"GET / HTTP/1.1\r\n\r\n"])]


def case_huge_headers(rng: random.Random) -> list[bytes]:
    kind = rng.randrange(3)
    if kind == 0:
        headers = {"X-Big": "a" * rng.choice([8_000, 70_000, 300_000])}
    elif kind == 1:
        headers = {f"X-H{n}": "v" for n in range(rng.choice([100, 1000, 5000]))}
    else:
        headers = {"Cookie": "pfd_owner=" + "A" * 100_000}
    return [head("GET", "/healthz", headers)]


def case_mutated(rng: random.Random) -> list[bytes]:
    request_head, body = valid_chunk(rng)
    if rng.random() < 0.3:
        return [mutate(rng, request_head) + body]
    return [request_head + mutate(rng, body)]


def case_garbage(rng: random.Random) -> list[bytes]:
    return [
        rng.choice(
            [
                rng.randbytes(rng.randint(1, 2000)),
                b"\r\n" * 50,
                b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /upload HTTP/9.9\r\nHost: x\r\n\r\n",
                b"BREW /upload HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: multipart/form-data; boundary=b\r\n\r\nzz\r\nxx\r\n",
                b"PUT /put/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"ffffffffffffffffff\r\nabc\r\n",
                b"GET /upload/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n",
                b"GET /download/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
                b"PUT /put/%C0%AE%C0%AE%2F HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
            ]
        )
    ]


def case_slow_sender(rng: random.Random) -> list[bytes]:
    request_head, body = valid_chunk(rng)
    data = request_head + body
    cuts = sorted(rng.sample(range(1, len(data)), k=min(4, len(data) - 1)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


FILE_ID = b"@FILE_ID@"  # replaced by a published file's id when the case is sent


def case_hostile_values(rng: random.Random) -> list[bytes]:
    """Values that used to answer 500 or cost memory (issue 14)."""
    digits = b"9" * rng.choice([21, 4400, 6000])
    life = rng.choice(["1" + "0" * 400, "99999999999999999999w", "9" * 5000])
    fields = list(chunk_fields(str(uuid.uuid4()), 0, 10, 10).items())
    trailing = multipart(fields, "t.bin", b"0123456789").rsplit(b"--rawb0undary--", 1)[0]
    trailing += b"".join(
        b'--rawb0undary\r\nContent-Disposition: form-data; name="n"\r\n\r\nv\r\n'
        for _ in range(rng.choice([9, 500]))
    )
    trailing += b"--rawb0undary--\r\n"
    return [
        rng.choice(
            [
                b"GET /download/"
                + FILE_ID
                + b" HTTP/1.1\r\nHost: x\r\nRange: bytes="
                + digits
                + b"-\r\n\r\n",
                b"GET /download/"
                + FILE_ID
                + b" HTTP/1.1\r\nHost: x\r\nRange: bytes=-"
                + digits
                + b"\r\n\r\n",
                f"PUT /put/e.bin?expires_in={life}"
                " HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx".encode(),
                b"POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n"
                b"Upload-Concat: final;http://[::1/files/x\r\nContent-Length: 0\r\n\r\n",
                head("POST", "/upload", {CT: MULTIPART}, len(trailing)) + trailing,
                b"GET /api/files HTTP/1.1\r\nHost: "
                + rng.choice([b"evil.example", b"[::1", b""])
                + b"\r\n\r\n",
            ]
        )
    ]


CASE_KINDS: list[Callable[[random.Random], list[bytes]]] = [
    case_broken_boundary,
    case_truncated,
    case_lying_length,
    case_huge_headers,
    case_mutated,
    case_garbage,
    case_slow_sender,
    case_hostile_values,
]


def run_case(port: int, pieces: list[bytes], half_close: bool, pause: float) -> RawResponse | None:
    with socket.create_connection(("127.0.0.1", port), timeout=CASE_TIMEOUT) as sock:
        with contextlib.suppress(OSError):
            for piece in pieces:
                sock.sendall(piece)
                if pause:
                    time.sleep(pause)  # the behaviour under test: a slow sender
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        return read_response(sock, CASE_TIMEOUT)


def test_malformed_requests_never_break_the_server(server: Server) -> None:
    rng = random.Random(SEED)
    published = httpx.put(f"{server.url}/put/fuzz-target.bin", content=b"0123456789", timeout=5)
    file_id = published.json()["id"].encode()
    statuses: dict[str, list[int | None]] = {kind.__name__: [] for kind in CASE_KINDS}
    started = time.monotonic()
    for number in range(CASES):
        kind = CASE_KINDS[number % len(CASE_KINDS)]
        pieces = [piece.replace(FILE_ID, file_id) for piece in kind(rng)]
        slow = kind is case_slow_sender
        # Bodies that end early are followed by a half-close (the server sees the end at once
        # instead of waiting out its idle timeout); slow senders pause between pieces.
        half_close = kind in (case_truncated, case_lying_length, case_garbage)
        response = run_case(server.port, pieces, half_close, 0.05 if slow else 0.0)
        status = response.status if response else None
        statuses[kind.__name__].append(status)
        assert status is None or status < 500, (number, kind.__name__, response)
        if number % 20 == 19:
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    elapsed = time.monotonic() - started
    assert elapsed < 120
    assert httpx.get(f"{server.url}/healthz", timeout=5).json()["status"] == "ok"
    log = server.log_path.read_text(errors="replace")
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]
    # Most malformed requests get an answer (a 4xx), not just a dropped connection.
    answered = sum(status is not None for values in statuses.values() for status in values)
    assert answered > CASES // 2, statuses
    # Oversized heads are refused (431) instead of buffered.
    assert set(statuses["case_huge_headers"]) <= {200, 431, None}
    assert 431 in statuses["case_huge_headers"]
    assert_nothing_strange_stored(server.storage_dir)


def assert_nothing_strange_stored(storage: Path) -> None:
    # The fuzz target is the one file expected; the rest must be ordinary names.
    for path in storage.iterdir():
        assert path.is_file() and not path.name.startswith(".")
        assert "/" not in path.name and "\x00" not in path.name
