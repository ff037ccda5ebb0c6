"""A plain-HTTP connection on `http.client`: chunk POSTs, file GETs and the short requests.

httpx spends CPU on every piece: h11 joins each one into a new bytes object, httpcore copies the
unsent rest after each partial `send`, and a download passes its decoders 64 KiB at a time.
Measured on 1 GiB over loopback (2026-12-05, a loaded machine): 8 MiB POSTs to a discarding
server, 0.33-0.43 s of CPU with httpx, 0.10-0.12 s with `sendall`; in `pyfiledrop upload` the
four senders went from ~0.44 to ~0.34 s. Here a body goes out with one `sendall` per piece from
the caller's buffer, or with `sendfile` for a piece that is a range of a file (the page cache
straight to the socket: no read into Python, no copy out of it), and a download is read with
`readinto` into the caller's buffer.

The short requests (an upload's probe and finish, a download's HEAD) come here too: then a run never
makes httpx's own transport (see `transport.make_client`). Only for `http://` without a proxy from
the environment: TLS and proxies stay with httpx, which already does them right. Answers come back
as `httpx.Response` and failures as httpx's exceptions, so the callers handle one kind of each
whichever way the bytes went.
"""

import http.client
import os
import select
import socket
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from pyfiledrop.client.transport import CONNECT_TIMEOUT_SECONDS, IO_TIMEOUT_SECONDS

Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True)
class FileRange:
    """`length` bytes of an open file from `offset`, sent with `sendfile`."""

    fd: int
    offset: int
    length: int

    def __len__(self) -> int:
        return self.length


class FileEnded(Exception):
    """A `FileRange` reached past the end of its file (the file shrank)."""


Piece = Buffer | FileRange
ERROR_BODY_LIMIT = 64 * 1024  # an error's explanation is short: no more of it is read
# Headers of the httpx client that this connection sets itself (or must not send).
_NOT_COPIED = frozenset({"host", "content-length", "accept-encoding", "transfer-encoding"})


def usable(url: str) -> bool:
    """Plain http, and no proxy in the environment (httpx reads the same variables)."""
    if urlsplit(url).scheme != "http":
        return False
    proxies = urllib.request.getproxies()
    return not (proxies.get("http") or proxies.get("all"))


class Connection:
    """One keep-alive connection to one server, used by one thread at a time."""

    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base_url)
        self._base = base_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._conn = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=CONNECT_TIMEOUT_SECONDS
        )
        self._headers = [(k, v) for k, v in headers.items() if k.lower() not in _NOT_COPIED]

    def close(self) -> None:
        self._conn.close()

    def _connect(self) -> None:
        sock = self._conn.sock
        if sock is not None and _readable(sock):
            # A kept-alive connection the server has closed (or that holds stray bytes).
            self._conn.close()
        if self._conn.sock is None:
            try:
                self._conn.connect()
            except TimeoutError as error:
                raise httpx.ConnectTimeout(str(error)) from error
            except OSError as error:
                raise httpx.ConnectError(f"[Errno {error.errno}] {error.strerror}") from error
            self._socket().settimeout(IO_TIMEOUT_SECONDS)

    def _socket(self) -> socket.socket:
        sock: socket.socket | None = self._conn.sock
        if sock is None:
            raise httpx.ConnectError("not connected")
        return sock

    def post(
        self, path: str, headers: dict[str, str], body: Iterable[Piece], length: int
    ) -> httpx.Response:
        """POST `length` bytes given as pieces; the answer, read whole (answers here are small)."""
        request = httpx.Request("POST", self._base + path)
        with self._failures(request):
            self._connect()
            self._start("POST", path, headers | {"Content-Length": str(length)})
            sock = self._socket()
            try:
                for piece in body:
                    if isinstance(piece, FileRange):
                        _send_file(sock, piece)
                    else:
                        sock.sendall(piece)
            except OSError as error:
                # The server may have answered early (413, 401...) and closed: that answer
                # explains more than the broken pipe does, when it can still be read.
                return self._answer_after(request, error)
            response = self._conn.getresponse()
            return _as_httpx(request, response, response.read())

    def fetch(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        """A request without a body (GET, HEAD, an empty POST); the answer, read whole (those
        answers are short)."""
        request = httpx.Request(method, self._base + path)
        with self._failures(request):
            self._connect()
            length = {"Content-Length": "0"} if method == "POST" else {}
            self._start(method, path, headers | length)
            response = self._conn.getresponse()
            return _as_httpx(request, response, response.read())

    @contextmanager
    def get(
        self, path: str, headers: dict[str, str]
    ) -> Iterator[tuple[httpx.Response, http.client.HTTPResponse]]:
        """GET: the answer's status and headers (with the body too, when it is an error) and
        the raw answer to read a 200 or 206 body from with `read_into`, inside the `with`."""
        request = httpx.Request("GET", self._base + path)
        with self._failures(request):
            self._connect()
            self._start("GET", path, headers)
            raw = self._conn.getresponse()
            body = b"" if raw.status in (200, 206) else raw.read(ERROR_BODY_LIMIT)
        try:
            yield _as_httpx(request, raw, body), raw
        except BaseException:
            self._conn.close()  # the body may be half read: never reuse the connection
            raise
        finally:
            raw.close()

    def _start(self, method: str, path: str, headers: Mapping[str, str]) -> None:
        conn = self._conn
        conn.putrequest(method, self._prefix + path, skip_accept_encoding=True)
        for name, value in [*self._headers, *headers.items()]:
            conn.putheader(name, value)
        conn.endheaders()

    def _answer_after(self, request: httpx.Request, error: OSError) -> httpx.Response:
        try:
            response = self._conn.getresponse()
            return _as_httpx(request, response, response.read())
        except (OSError, http.client.HTTPException):
            raise httpx.WriteError(str(error) or type(error).__name__) from error

    @contextmanager
    def _failures(self, request: httpx.Request) -> Iterator[None]:
        """httpx's exceptions for socket and protocol failures; the connection is dropped."""
        try:
            yield
        except httpx.TransportError:
            self._conn.close()
            raise
        except TimeoutError as error:
            self._conn.close()
            raise httpx.ReadTimeout(str(error) or "timed out", request=request) from error
        except OSError as error:
            self._conn.close()
            raise httpx.ReadError(str(error) or type(error).__name__, request=request) from error
        except http.client.HTTPException as error:
            self._conn.close()
            detail = str(error) or type(error).__name__
            raise httpx.RemoteProtocolError(detail, request=request) from error
        except BaseException:
            self._conn.close()  # the connection is mid-request: never reuse it
            raise


class Pool:
    """Idle connections to one server, kept between files (a new file's senders skip the
    handshake); each is used by one thread at a time."""

    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        self._base_url = base_url
        self._headers = headers
        self._idle: list[Connection] = []
        self._lock = threading.Lock()

    def take(self) -> Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return Connection(self._base_url, self._headers)

    def give(self, connection: Connection) -> None:
        with self._lock:
            self._idle.append(connection)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def read_into(response: http.client.HTTPResponse, view: memoryview) -> int:
    """Fill `view` from the body (fewer bytes only at its end); httpx's exceptions on failure."""
    try:
        return response.readinto(view)
    except TimeoutError as error:
        raise httpx.ReadTimeout(str(error) or "timed out") from error
    except OSError as error:
        raise httpx.ReadError(str(error) or type(error).__name__) from error
    except http.client.HTTPException as error:
        raise httpx.RemoteProtocolError(str(error) or type(error).__name__) from error


def _send_file(sock: socket.socket, piece: FileRange) -> None:
    """All of `piece` with sendfile(2), within the socket's timeout (the socket is non-blocking
    underneath, as any socket with a timeout is)."""
    offset, end = piece.offset, piece.offset + piece.length
    while offset < end:
        try:
            sent = os.sendfile(sock.fileno(), piece.fd, offset, end - offset)
        except BlockingIOError:
            if not _writable(sock, sock.gettimeout()):
                raise TimeoutError("timed out") from None
            continue
        if not sent:
            raise FileEnded(f"no bytes at offset {offset} of {end}")
        offset += sent


def _writable(sock: socket.socket, timeout: float | None) -> bool:
    _, writable, _ = select.select([], [sock], [], timeout)
    return bool(writable)


def _readable(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def _as_httpx(
    request: httpx.Request, response: http.client.HTTPResponse, body: bytes
) -> httpx.Response:
    return httpx.Response(
        response.status, headers=response.getheaders(), content=body, request=request
    )
