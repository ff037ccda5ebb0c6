"""An error that closes the connection says so (`Connection: close`), so a pipelined or reused
connection is not left waiting for an answer that never comes."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

import pyfiledrop.files as files
from tests.rawhttp import read_response
from tests.security.test_slow_clients import threaded_server


def test_a_500_says_connection_close_or_answers_the_pipelined_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(files, "served_files_of", broken)
    pipelined = (
        b"GET /api/files HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    with threaded_server(tmp_path) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(pipelined)
        first = read_response(sock, timeout=5)
        assert first is not None and first.status == 500
        if first.header("connection") != "close":
            second = read_response(sock, timeout=5)
            assert second is not None and second.status == 200
