"""A body trickled slowly enough to dodge the idle timeout (a byte every 25 s held a connection,
and any reservation, forever) is cut off by the rate floor; a slow but steady body is not."""

from __future__ import annotations

import socket
import threading
import time

from tests.conftest import ServerFactory
from tests.rawhttp import RawResponse, head, read_response

WINDOW = 2


def trickle(
    port: int, total: int, piece: int, pause: float, limit: float
) -> tuple[RawResponse | None, float]:
    """PUT `total` bytes, `piece` bytes every `pause` s; (the answer or None, seconds until it)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        sock.sendall(head("PUT", "/put/slow.bin", {}, total))
        stop = threading.Event()

        def sender() -> None:
            sent = 0
            while sent < total and not stop.wait(pause):
                try:
                    sock.sendall(b"x" * min(piece, total - sent))
                except OSError:
                    return
                sent += piece

        thread = threading.Thread(target=sender, daemon=True)
        thread.start()
        response = read_response(sock, timeout=limit)
        stop.set()
        thread.join(5)
    return response, time.monotonic() - started


def test_a_trickled_body_is_cut_off_after_the_window(server_factory: ServerFactory) -> None:
    server = server_factory("--min-rate", "1000", "--min-rate-window", str(WINDOW))
    response, elapsed = trickle(server.port, 100_000, 10, 0.25, limit=WINDOW + 6)
    assert response is not None, "the trickle was never cut off"
    assert response.status == 408, response
    assert response.header("connection") == "close"
    assert elapsed < WINDOW + 3
    assert server.stored_files() == []


def test_a_slow_but_steady_body_passes(server_factory: ServerFactory) -> None:
    server = server_factory("--min-rate", "1000", "--min-rate-window", str(WINDOW))
    response, _ = trickle(server.port, 12_000, 500, 0.25, limit=20)  # 2000 bytes/s for 6 s
    assert response is not None and response.status == 201, response
