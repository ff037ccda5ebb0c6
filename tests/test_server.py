"""Start-up: "Listening" only once the socket listens, every address for a wildcard host, a busy
port in one line, and the summary's sizes in the page's units."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import httpx

from pyfiledrop.config import Settings
from pyfiledrop.server import listen_urls, summary
from tests.conftest import free_port

START_TIMEOUT_SECONDS = 30


def serve_command(root: Path, port: int, *args: str) -> list[str]:
    return [
        sys.executable, "-m", "pyfiledrop", "serve", "--port", str(port),
        "--storage", str(root / "storage"), "--chunks", str(root / "chunks"),
        "--data", str(root / "data"), *args,
    ]  # fmt: skip


def test_listening_is_printed_when_the_server_can_be_reached(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        serve_command(tmp_path, port, "--host", "127.0.0.1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:  # bounded: the server prints its summary, then this line
            printed.append(line)
            if line.startswith("Listening on"):
                break
        assert printed[-1].strip() == f"Listening on http://127.0.0.1:{port}/"
        # At once, no retry: the socket was listening before the line was printed.
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=20).status_code == 200
    finally:
        process.terminate()
        process.wait(10)


def test_a_busy_port_prints_one_line_and_no_listening(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            serve_command(tmp_path, port, "--host", "127.0.0.1"),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
        )
    assert result.returncode == 2
    assert "Listening" not in result.stdout
    assert result.stderr.strip().splitlines() == [
        f"pyfiledrop: error: --host 127.0.0.1 --port {port}: can't listen there"
        " (Address already in use)"
    ]


def test_every_address_is_listed_for_a_wildcard_host() -> None:
    def v4() -> list[str]:
        return ["127.0.0.1", "192.168.1.20", "10.0.0.5", "127.0.0.1"]

    def v6() -> list[str]:
        return ["::1", "2001:db8::7"]

    assert listen_urls("0.0.0.0", 8080, v4, v6) == [
        "http://127.0.0.1:8080/",
        "http://10.0.0.5:8080/",
        "http://192.168.1.20:8080/",
    ]
    assert listen_urls("::", 8080, v4, v6) == [
        "http://[::1]:8080/",
        "http://127.0.0.1:8080/",
        "http://10.0.0.5:8080/",
        "http://192.168.1.20:8080/",
        "http://[2001:db8::7]:8080/",
    ]
    assert listen_urls("192.168.1.20", 80) == ["http://192.168.1.20:80/"]
    assert listen_urls("::1", 80) == ["http://[::1]:80/"]


def test_the_real_interfaces_include_loopback() -> None:
    urls = listen_urls("0.0.0.0", 9)
    assert urls[0] == "http://127.0.0.1:9/"
    for url in urls:  # each one a real address of this machine
        host = url.removeprefix("http://").rsplit(":", 1)[0]
        with socket.socket() as probe:
            probe.bind((host, 0))


def test_summary_sizes_are_in_the_pages_units(tmp_path: Path) -> None:
    text = summary(Settings(storage=tmp_path, chunk_size=8 * 1024**2, max_size=2048))
    assert "Chunk Size: 8.0 MiB" in text
    assert "Max File Size: 2.0 GiB" in text
    assert "Listening" not in text
