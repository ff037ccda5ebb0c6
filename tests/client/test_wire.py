"""`wire`: the http.client connection that carries the chunk POSTs and download GETs."""

from __future__ import annotations

import contextlib
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pyfiledrop.client import wire
from pyfiledrop.client.download import _Chunks
from pyfiledrop.client.transport import describe_transport_error, server_error, trusting_nothing
from tests.client.helpers import MiB, cli_env, json_lines, run_cli
from tests.client.relay import relay
from tests.conftest import Server, ServerFactory, random_file, sha256_of

ANSWER = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"


def _read_request(conn: socket.socket) -> int:
    """Read one request's head and body; the body's length."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return -1
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    left = length - len(body)
    while left > 0:
        piece = conn.recv(min(left, 1 << 20))
        assert piece
        left -= len(piece)
    return length


@contextlib.contextmanager
def one_request_per_connection(
    status: int, body: bytes
) -> Iterator[tuple[str, list[int], threading.Semaphore]]:
    """A server that answers each connection's first request, then closes it without saying
    so (no `Connection: close`), as a server whose keep-alive timeout ran out does."""
    listener = socket.create_server(("127.0.0.1", 0))
    lengths: list[int] = []
    closed = threading.Semaphore(0)

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                lengths.append(_read_request(conn))
                conn.sendall(ANSWER % (status, len(body), body))
            closed.release()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", lengths, closed
    finally:
        listener.close()


def test_a_connection_the_server_closed_is_replaced_not_failed() -> None:
    with one_request_per_connection(200, b'{"status": "ok"}') as (url, lengths, closed):
        connection = wire.Connection(url, {"User-Agent": "test"})
        try:
            for _ in range(3):
                response = connection.post("/upload", {}, [b"x" * 1000, memoryview(b"y")], 1001)
                assert response.status_code == 200
                assert response.json() == {"status": "ok"}
                # The server has closed its end: the next request must notice, not fail.
                assert closed.acquire(timeout=10)
        finally:
            connection.close()
    assert lengths == [1001, 1001, 1001]


def test_an_error_answer_keeps_the_servers_words() -> None:
    with one_request_per_connection(413, b'{"error": "file too large"}') as (url, _, _):
        connection = wire.Connection(url, {})
        try:
            response = connection.post("/upload", {}, [bytes(2 * MiB)], 2 * MiB)
        finally:
            connection.close()
    assert server_error(response) == "413 file too large"


def test_an_answer_before_the_body_is_read_is_still_heard() -> None:
    """A server that refuses on the headers alone and hangs up mid-body (its unread bytes make
    that a reset): the client's send fails, yet the refusal, already received, is reported."""
    listener = socket.create_server(("127.0.0.1", 0))
    answer = b'{"error": "file too large"}'

    def refuse() -> None:
        conn, _ = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(ANSWER % (413, len(answer), answer))

    thread = threading.Thread(target=refuse, daemon=True)
    thread.start()
    connection = wire.Connection(f"http://127.0.0.1:{listener.getsockname()[1]}", {})
    piece = memoryview(bytes(MiB))
    try:
        response = connection.post("/upload", {}, (piece for _ in range(256)), 256 * MiB)
    finally:
        connection.close()
        listener.close()
        thread.join(10)
    assert server_error(response) == "413 file too large"


def test_nobody_listening_is_a_connect_error_in_words() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        url = f"http://127.0.0.1:{taken.getsockname()[1]}"
    connection = wire.Connection(url, {})
    with pytest.raises(httpx.ConnectError) as caught:
        connection.post("/upload", {}, [b"x"], 1)
    assert describe_transport_error(caught.value, url) == f"cannot reach {url}: Connection refused"


def test_a_proxy_or_tls_leaves_the_bytes_to_httpx(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert wire.usable("http://127.0.0.1:8000")
    assert not wire.usable("https://example.org")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")  # not for http:// URLs
    assert wire.usable("http://127.0.0.1:8000")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:3128")
    assert not wire.usable("http://127.0.0.1:8000")
    monkeypatch.delenv("ALL_PROXY")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:3128")
    assert not wire.usable("http://127.0.0.1:8000")


def test_the_plain_http_client_would_refuse_any_tls() -> None:
    context = trusting_nothing()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0


def test_httpx_pieces_fill_buffers_exactly() -> None:
    pieces = [b"abc", b"", b"defgh", b"i" * 10]
    fill = _Chunks(iter(pieces))
    out = bytearray()
    buffer = bytearray(4)
    while True:
        with memoryview(buffer) as view:
            got = fill(view)
        out += buffer[:got]
        if got < len(buffer):
            break
    assert bytes(out) == b"".join(pieces)


def test_the_password_goes_with_the_bulk_requests_too(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory("-a", "--password", "the right one")
    source = random_file(tmp_path / "guarded.bin", 2 * MiB + 1)
    state_dir = tmp_path / "state"
    password = {"PYFILEDROP_PASSWORD": "the right one"}
    upload = run_cli(
        state_dir, "upload", str(source), "--url", server.url, "--chunk-size", "1M", "--json",
        extra_env=password,
    )  # fmt: skip
    assert upload.returncode == 0, upload.stderr
    (record,) = json_lines(upload.stdout)
    target = tmp_path / "back.bin"
    download = run_cli(
        state_dir, "download", record["url"], "-o", str(target), "--json", extra_env=password
    )
    assert download.returncode == 0, download.stderr
    assert json_lines(download.stdout)[0]["verified"] is True
    assert sha256_of(target) == sha256_of(source) == record["sha256"]


def test_upload_and_download_through_a_proxy_go_by_httpx(server: Server, tmp_path: Path) -> None:
    """With a proxy in the environment, every request goes to it (httpx's path), and the file
    still arrives whole both ways."""
    source = random_file(tmp_path / "proxied.bin", 3 * MiB + 5)
    state_dir = tmp_path / "state"
    with relay(server.port) as proxy:
        env = {"http_proxy": proxy.url, "no_proxy": "", "NO_PROXY": ""}
        upload = run_cli(
            state_dir, "upload", str(source), "--url", server.url, "--chunk-size", "1M",
            "--json", extra_env=env,
        )  # fmt: skip
        assert upload.returncode == 0, upload.stderr
        (record,) = json_lines(upload.stdout)
        assert record["verified"] is True
        through_proxy = proxy.connections
        target = tmp_path / "back.bin"
        download = run_cli(
            state_dir, "download", record["url"], "-o", str(target), "--json", extra_env=env
        )
        assert download.returncode == 0, download.stderr
    assert through_proxy >= 1 and proxy.connections > through_proxy
    assert sha256_of(target) == sha256_of(source) == record["sha256"]


def test_files_after_the_first_reuse_the_senders_connections(
    server: Server, tmp_path: Path
) -> None:
    files = [random_file(tmp_path / f"f{n}.bin", 2 * MiB) for n in range(4)]
    with relay(server.port) as counting:
        result = run_cli(
            tmp_path / "state", "upload", *map(str, files), "--url", counting.url,
            "--chunk-size", "1M", "--parallel", "2", "--json",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert [r["verified"] for r in json_lines(result.stdout)] == [True] * 4
    # httpx's one for the probes and finishes, and one per sender: not two more per file.
    assert counting.connections <= 3


def _received(conn: socket.socket, length: int) -> bytes:
    data = b""
    while len(data) < length:
        piece = conn.recv(length - len(data))
        assert piece
        data += piece
    return data


def test_a_file_range_is_sent_exactly(tmp_path: Path) -> None:
    source = random_file(tmp_path / "range.bin", 3 * MiB + 5)
    ours, theirs = socket.socketpair()
    with ours, theirs, open(source, "rb") as file:
        ours.settimeout(10)
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(_received(theirs, 2 * MiB + 1)))
        reader.start()
        wire._send_file(ours, wire.FileRange(file.fileno(), MiB + 2, 2 * MiB + 1))
        reader.join(timeout=30)
    assert got == [source.read_bytes()[MiB + 2 : 3 * MiB + 3]]


def test_a_file_range_past_the_end_of_its_file_fails(tmp_path: Path) -> None:
    source = random_file(tmp_path / "short.bin", 1000)
    ours, theirs = socket.socketpair()
    with ours, theirs, open(source, "rb") as file:
        ours.settimeout(10)
        with pytest.raises(wire.FileEnded):
            wire._send_file(ours, wire.FileRange(file.fileno(), 0, 1001))
        assert _received(theirs, 1000) == source.read_bytes()


def test_a_file_range_to_a_peer_that_stops_reading_times_out(tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.bin", 16 * MiB)  # more than the socket buffers hold
    ours, theirs = socket.socketpair()
    with ours, theirs, open(source, "rb") as file:
        ours.settimeout(0.2)
        with pytest.raises(TimeoutError):
            wire._send_file(ours, wire.FileRange(file.fileno(), 0, 16 * MiB))


UNNEEDED = ("httpcore", "pyfiledrop.config", "pyfiledrop.admin", "rich", "asyncio")
MODULES_AT_EXIT = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('loaded', [m for m in {UNNEEDED!r} if m in sys.modules],"
    " file=sys.stderr))\n"
    "from pyfiledrop.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_plain_http_runs_import_only_what_they_use(server: Server, tmp_path: Path) -> None:
    # Tens of ms of CPU each at every start: httpx's transport (httpcore; the probe, finish and
    # HEAD go over `wire` too), the server's settings and admin's modules, rich off a terminal,
    # asyncio (the client runs on threads).
    source = random_file(tmp_path / "small.bin", MiB + 7)
    state_dir = tmp_path / "state"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", MODULES_AT_EXIT, *args], env=cli_env(state_dir),
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    uploaded = run("upload", str(source), "--url", server.url, "--json")
    assert uploaded.returncode == 0, uploaded.stderr
    assert "loaded []" in uploaded.stderr
    (record,) = json_lines(uploaded.stdout)
    assert record["verified"] is True
    folder = tmp_path / "downloads"
    folder.mkdir()
    url = str(record["url"])
    downloaded = run(
        "download", url if url.startswith("http") else server.url + url, "-o", str(folder)
    )
    assert downloaded.returncode == 0, downloaded.stderr
    assert "loaded []" in downloaded.stderr
    assert sha256_of(folder / "small.bin") == sha256_of(source)
