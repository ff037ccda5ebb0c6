"""Raw HTTP/1.1 over a socket, for requests no well-behaved client would send (tests only)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

FieldList = list[tuple[str, str]]


def part(name: str, value: bytes, boundary: str, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
    if filename is not None:
        head += "Content-Type: application/octet-stream\r\n"
    return head.encode("utf-8", "surrogateescape") + b"\r\n" + value + b"\r\n"


def multipart(
    fields: FieldList, filename: str | None, data: bytes | None, boundary: str = "rawb0undary"
) -> bytes:
    """Fields in the given order (duplicates allowed), then the file part, then the closing line."""
    body = b"".join(part(name, value.encode(), boundary) for name, value in fields)
    if data is not None:
        body += part("file", data, boundary, filename if filename is not None else "f.bin")
    return body + f"--{boundary}--\r\n".encode()


def head(
    method: str, path: str, headers: dict[str, str] | None = None, length: int | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(
    sock: socket.socket, timeout: float = 10.0, bodiless: bool = False
) -> RawResponse | None:
    """One response (Content-Length framed, or until close); None if the server sent nothing.
    `bodiless`: the answer to a HEAD request, whose Content-Length describes no body."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ConnectionError, TimeoutError, OSError):
        while b"\r\n\r\n" not in data and time.monotonic() < deadline:
            piece = sock.recv(65536)
            if not piece:
                break
            data += piece
    if b"\r\n\r\n" not in data:
        return None
    raw_head, _, body = data.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = [tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line]
    response = RawResponse(status, [(k, v) for k, v in headers], body, raw_head)
    length = "0" if bodiless or status in (204, 304) else response.header("content-length")
    with contextlib.suppress(ConnectionError, TimeoutError, OSError):
        while time.monotonic() < deadline and (length is None or len(body) < int(length)):
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
    response.body = body if length is None else body[: int(length)]
    return response


def exchange(port: int, request: bytes, timeout: float = 10.0) -> RawResponse | None:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(ConnectionError, OSError):
            sock.sendall(request)
        return read_response(sock, timeout, bodiless=request.startswith(b"HEAD "))


@dataclass
class Streamed:
    response: RawResponse | None
    sent_when_answered: int
    sent_total: int


def stream_until_answered(
    port: int, request_head: bytes, pieces: Any, timeout: float = 30.0
) -> Streamed:
    """Send a body piece by piece while watching for the answer; count what went out before it.

    The sender stops when the server answers, closes, or resets: so a server that refuses a body
    early is seen to have read only a little of it.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sent = [0]
    answered = threading.Event()

    def sender() -> None:
        with contextlib.suppress(OSError):
            sock.sendall(request_head)
            for piece in pieces:
                if answered.is_set():
                    return
                sock.sendall(piece)
                sent[0] += len(piece)

    thread = threading.Thread(target=sender, daemon=True)
    thread.start()
    try:
        response = read_response(sock, timeout)
        at_answer = sent[0]
        answered.set()
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        thread.join(timeout)
    finally:
        sock.close()
    return Streamed(response, at_answer, sent[0])
