"""Slow and lying clients: a body far larger than it claims is refused early, a stalled body is
cut off by the idle timeout, and 200 idle or trickling sockets don't keep others waiting."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import pyfiledrop.protocols.body as body_module
import pyfiledrop.web.http_limits as http_limits
from pyfiledrop.web.app import create_app
from tests.conftest import (
    Server,
    ServerFactory,
    random_file,
    sha256_of,
    uvicorn_in_thread,
)
from tests.dz import chunk_fields, upload
from tests.harness import settings_in
from tests.rawhttp import head, multipart, read_response, stream_until_answered

MiB = 1024 * 1024
GIB_OF_PIECES = 1024
EARLY_ENOUGH = 32 * MiB  # socket buffers on loopback hold a few MiB before the server reads
BLOCK = bytes(MiB)


def chunk_head(upload_id: str, content_length: int | None, cookie: str = "") -> tuple[bytes, bytes]:
    """Request head and the multipart bytes before a 1 MiB chunk's data (which never ends)."""
    fields = list(chunk_fields(upload_id, 0, MiB, 2 * MiB).items())
    prefix = multipart(fields, "big.bin", b"").rsplit(b"\r\n--rawb0undary--", 1)[0]
    headers = {"Content-Type": "multipart/form-data; boundary=rawb0undary"}
    if cookie:
        headers["Cookie"] = f"pfd_owner={cookie}"
    if content_length is None:
        headers["Transfer-Encoding"] = "chunked"
    return head("POST", "/upload", headers, content_length), prefix


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_gib_claiming_one_mib_is_refused_after_a_few_mib(server: Server, framing: str) -> None:
    upload_id = str(uuid.uuid4())
    total = GIB_OF_PIECES * MiB
    request_head, prefix = chunk_head(upload_id, total if framing == "content-length" else None)
    if framing == "content-length":
        pieces: Iterator[bytes] = iter([prefix, *(BLOCK for _ in range(GIB_OF_PIECES))])
    else:
        framed = [prefix, *(BLOCK for _ in range(GIB_OF_PIECES))]
        pieces = (b"%x\r\n" % len(piece) + piece + b"\r\n" for piece in framed)
    started = time.monotonic()
    result = stream_until_answered(server.port, request_head, pieces)
    elapsed = time.monotonic() - started
    print(f"\n{framing}: answered after {result.sent_when_answered / MiB:.1f} MiB of 1 GiB sent")
    assert result.response is not None
    assert result.response.status == 413, result.response.body
    assert "longer than the chunk" in result.response.json()["error"]
    assert result.sent_when_answered < EARLY_ENOUGH, result.sent_when_answered
    assert result.sent_total < EARLY_ENOUGH + 8 * MiB  # and it stops reading
    assert elapsed < 10
    assert server.stored_files() == []
    assert server.health()["chunks_counted"] == 0


def test_put_over_the_limit_is_refused_before_the_body(server_factory: ServerFactory) -> None:
    server = server_factory("--max-size", "16")
    request_head = head("PUT", "/put/big.bin", length=GIB_OF_PIECES * MiB)
    result = stream_until_answered(server.port, request_head, (BLOCK for _ in range(GIB_OF_PIECES)))
    assert result.response is not None and result.response.status == 413
    assert result.sent_when_answered < EARLY_ENOUGH
    assert list(server.chunks_dir.iterdir()) == []


@contextlib.contextmanager
def threaded_server(root: Path) -> Iterator[int]:
    """The app under uvicorn in this process, so a test can shorten its idle timeout."""
    with uvicorn_in_thread(create_app(settings_in(root, timeout=500, min_free=0))) as port:
        yield port


def test_a_stalled_body_is_cut_off_by_the_idle_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body_module, "MIN_IDLE_SECONDS", 1.0)  # in production: at least 30 s
    with threaded_server(tmp_path) as port:
        upload_id = str(uuid.uuid4())
        request_head, prefix = chunk_head(upload_id, MiB + 2000)
        put_head = head("PUT", "/put/stalled.bin", length=4 * MiB)
        for request in (request_head + prefix + BLOCK[:1000], put_head + BLOCK[:1000]):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                started = time.monotonic()
                sock.sendall(request)
                response = read_response(sock, timeout=10)
                waited = time.monotonic() - started
            assert response is not None and response.status == 400
            assert "stalled" in response.json()["error"]
            assert 0.9 < waited < 5
        # The chunked upload stays resumable (its partial, nothing counted); the PUT is gone.
        assert [p.name for p in (tmp_path / "chunks").iterdir()] == [f"{upload_id}.part"]
        assert not list((tmp_path / "storage").iterdir())


def test_a_huge_request_head_is_refused_early(server: Server) -> None:
    """httptools alone buffers header lines without limit (64 MiB of header = 64 MiB of RSS)."""
    request_head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
    result = stream_until_answered(server.port, request_head, (b"a" * MiB for _ in range(256)))
    assert result.response is not None and result.response.status == 431
    assert result.sent_when_answered < EARLY_ENOUGH
    assert server.rss_peak_kib() < 200 * 1024
    many = head("GET", "/healthz", {f"X-H{n}": "v" * 20 for n in range(20_000)})
    pieces = (many[i : i + 16 * 1024] for i in range(0, len(many), 16 * 1024))
    result = stream_until_answered(server.port, b"", pieces)
    assert result.response is not None and result.response.status == 431
    assert server.health()["status"] == "ok"


def test_a_slow_request_head_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Silent connections and heads sent a byte at a time are closed (408) after the head
    timeout (20 s in production; 1 s here), so they can't pile up."""
    monkeypatch.setattr(http_limits, "HEAD_TIMEOUT_SECONDS", 1.0)
    with threaded_server(tmp_path) as port:
        silent = socket.create_connection(("127.0.0.1", port), timeout=10)
        trickling = socket.create_connection(("127.0.0.1", port), timeout=10)
        started = time.monotonic()
        for byte in b"GET /healthz HTTP/1.1\r\n":
            with contextlib.suppress(OSError):
                trickling.send(bytes([byte]))
            time.sleep(0.1)  # the behaviour under test: a head sent a byte at a time
            if time.monotonic() - started > 3:
                break
        for sock in (silent, trickling):
            response = read_response(sock, timeout=5)
            assert response is not None and response.status == 408
            sock.close()
        assert time.monotonic() - started < 6
        # A client that keeps up is unaffected: a keep-alive connection serves a second request.
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert client.get("/healthz").status_code == 200
            time.sleep(1.5)  # the behaviour: idle between requests for longer than the head timeout
            assert client.get("/healthz").status_code == 200


SLOW_SOCKETS = 200


def open_slow_sockets(port: int, cookie: str) -> list[socket.socket]:
    """A quarter each: silent; half a request line; headers then nothing; a chunk's body begun."""
    sockets = []
    for number in range(SLOW_SOCKETS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        kind = number % 4
        if kind == 1:
            sock.sendall(b"GET /heal")
        elif kind == 2:
            sock.sendall(head("PUT", f"/put/slow{number}.bin", length=MiB))
        elif kind == 3:
            request_head, prefix = chunk_head(str(uuid.uuid4()), 2 * MiB, cookie)
            sock.sendall(request_head + prefix + b"x")
        sockets.append(sock)
    return sockets


@pytest.mark.slow
def test_many_slow_connections_dont_starve_a_normal_client(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "normal.bin", 4 * MiB)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.get("/healthz")
        sockets = open_slow_sockets(server.port, client.cookies["pfd_owner"])
        try:
            stop = threading.Event()

            def trickle() -> None:  # one byte per socket per second, for those past the head
                while not stop.wait(1.0):
                    for sock in sockets[2::4] + sockets[3::4]:
                        with contextlib.suppress(OSError):
                            sock.send(b"x")

            trickler = threading.Thread(target=trickle, daemon=True)
            trickler.start()
            latencies = []
            for _ in range(10):
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.1)  # probes spread over the trickle, as a user's clicks would be
            started = time.monotonic()
            record = upload(client, source, MiB)
            upload_seconds = time.monotonic() - started
            assert client.get("/api/files").json()["files"][0]["id"] == record["id"]
            stop.set()
            trickler.join(5)
        finally:
            for sock in sockets:
                sock.close()
    assert max(latencies) < 2.0, latencies
    assert upload_seconds < 10
    assert record["sha256"] == sha256_of(source)
    # The hung-up PUTs and chunks left nothing behind but the chunks' resumable partials.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.health()["status"] != "ok":
        time.sleep(0.1)
    assert [p.name for p in server.stored_files()] == ["normal.bin"]
    assert not any(p.name.startswith("slow") for p in server.storage_dir.iterdir())
