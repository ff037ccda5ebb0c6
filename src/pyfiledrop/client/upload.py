"""`pyfiledrop upload`: Dropzone's chunked protocol from a terminal, parallel, resumable, verified.

The data path, per file:

- one reader thread reads the file once, front to back, with `readinto` into one reused 1 MiB
  buffer and hashes it there (so the SHA-256 needs no second pass, and a resumed run hashes the
  chunks the server already has without sending them);
- N sender threads each POST one chunk at a time, in index order, over their own keep-alive
  connection: the multipart head, then each 1 MiB piece with `sendfile` from the page cache,
  once the reader has read it (`window`), then the tail (`wire`; where TLS or a proxy is
  involved, httpx with pieces read by `pread`); a retry sends the chunk again the same way;
- the file's bytes wait in the page cache, not in our memory: the client's RSS does not grow
  with the chunk size or the number in flight.

Threads rather than asyncio: the hot work (socket sends, file reads, hashing) runs in C with the
GIL released, so threads overlap it on both cores with less Python per byte than an event loop.
"""

import hashlib
import io
import math
import os
import random
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urljoin

import httpx

from pyfiledrop.client import state as saved
from pyfiledrop.client import wire
from pyfiledrop.client.multipart import multipart_frame
from pyfiledrop.client.progress import Reporter
from pyfiledrop.client.sizes import format_size, megabytes_per_second
from pyfiledrop.client.transport import (
    TransferError,
    describe_transport_error,
    json_body,
    owner_from,
    owner_headers,
    refuse_unauthorized,
    server_error,
)
from pyfiledrop.client.window import Window
from pyfiledrop.units import AUTO_CHUNK_MIN_S3, auto_chunk_size

# None: auto, per file (units.auto_chunk_size), from 8 MiB: the CLI can't know whether the server
# stores in S3 (parts of 5 MiB or more), and bigger chunks cost it less per byte.
DEFAULT_CHUNK_SIZE: int | None = None
AUTO_CHUNK_FLOOR = AUTO_CHUNK_MIN_S3
DEFAULT_PARALLEL = 4
DEFAULT_RETRIES = 5
PIECE_SIZE = 1 << 20
READ_AHEAD_BYTES = 64 << 20
FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 8.0
SENDFILE = hasattr(os, "sendfile")  # not on Windows: there the pieces are read and sent
RETRIED_CLIENT_ERRORS = frozenset({408, 409, 429})
FINISH_ROUNDS = 3
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class UploadOptions:
    url: str
    chunk_size: int | None = DEFAULT_CHUNK_SIZE  # None: auto
    parallel: int = DEFAULT_PARALLEL
    retries: int = DEFAULT_RETRIES
    expires_in: str | None = None  # seconds; the server may keep the file shorter, never longer
    max_downloads: int | None = None


@dataclass(frozen=True)
class UploadResult:
    name: str
    id: str | None
    url: str | None
    size: int
    sha256: str
    seconds: float
    sent: int
    verified: bool
    delete_token: str | None = None

    @property
    def mbps(self) -> float:
        """Throughput of this run: bytes actually sent (a resumed run sends fewer) per second."""
        return megabytes_per_second(self.sent, self.seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "id": self.id,
            "url": self.url,
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
            "mbps": round(self.mbps, 1),
            "sent": self.sent,
            "verified": self.verified,
            "delete_token": self.delete_token,
        }


@dataclass
class Session:
    """What the run shares between files: the HTTP client and the owner it uploads as."""

    http: httpx.Client
    options: UploadOptions
    reporter: Reporter
    owner: str | None = None
    # The chunk POSTs' own connections (see `wire`); None: they go through `http`.
    connections: wire.Pool | None = None

    def __post_init__(self) -> None:
        if self.connections is None and wire.usable(self.options.url):
            self.connections = wire.Pool(self.options.url, self.http.headers)

    @property
    def upload_url(self) -> str:
        return f"{self.options.url}/upload"

    def close(self) -> None:
        if self.connections is not None:
            self.connections.close()

    def fetch(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        """A short request to `path` under the server's URL: over a pooled `wire` connection
        where there is one (the senders reuse it after), else through httpx."""
        if self.connections is None:
            return self.http.request(method, self.options.url + path, headers=headers)
        connection = self.connections.take()
        response = connection.fetch(method, path, headers)  # drops the connection on failure
        self.connections.give(connection)
        return response


@dataclass(frozen=True)
class Plan:
    dzuuid: str
    chunk_size: int
    chunk_count: int
    owner: str | None
    received: frozenset[int]
    finished_file: dict[str, Any] | None


def chunk_count(size: int, chunk_size: int) -> int:
    return max(1, math.ceil(size / chunk_size))


def chunk_length(index: int, size: int, chunk_size: int) -> int:
    return max(0, min(chunk_size, size - index * chunk_size))


def _read_exactly(file: io.FileIO, view: memoryview) -> int:
    """Fill `view` from the file (fewer bytes only at its end)."""
    done = 0
    while done < len(view):
        got = file.readinto(view[done:])
        if not got:
            break
        done += got
    return done


class _Aborted(TransferError):
    """Another thread failed (or Ctrl-C): this chunk stops mid-body, its connection dropped."""


def _backoff(attempt: int) -> float:
    delay = min(MAX_BACKOFF_SECONDS, FIRST_BACKOFF_SECONDS * 2.0 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


def _probe(session: Session, dzuuid: str, owner: str | None) -> tuple[httpx.Response, str | None]:
    """`GET /upload/<dzuuid>`: the server's view of an upload, and the owner cookie it hands out."""
    try:
        response = session.fetch("GET", f"/upload/{dzuuid}", owner_headers(owner))
    except httpx.TransportError as error:
        raise TransferError(describe_transport_error(error, session.options.url)) from error
    response.read()
    refuse_unauthorized(response)  # before anything is sent, started over or retried
    return response, owner_from(response) or owner


def _plan(session: Session, path: Path, identity: saved.FileIdentity) -> Plan:
    """Resume the interrupted upload of this file when that is still possible, else start one."""
    url, name, size = session.options.url, path.name, identity.size
    note = session.reporter.note
    previous = saved.load_upload(path, url)
    if previous is not None:
        changed = previous.identity.difference(identity)
        if changed:
            note(f"{name}: starting over: {changed} since the interrupted upload")
            previous = None
    if previous is not None:
        response, owner = _probe(session, previous.dzuuid, previous.owner)
        info = json_body(response) if response.status_code == 200 else None
        count = chunk_count(size, previous.chunk_size)
        if response.status_code >= 500:
            # Transient, maybe: keep the state so that the next run can still resume.
            raise TransferError(f"{name}: cannot resume now: {server_error(response)}")
        if response.status_code == 404:
            note(f"{name}: starting over: the server no longer has the interrupted upload")
        elif info is None:
            note(f"{name}: starting over: the server cannot resume ({server_error(response)})")
        elif info.get("size") != size or info.get("chunk_size") != previous.chunk_size:
            note(f"{name}: starting over: the server's upload does not match this file")
        else:
            received = frozenset(i for i in info.get("received", []) if isinstance(i, int))
            finished = info.get("file") if info.get("state") == "done" else None
            if isinstance(finished, dict):
                received = frozenset(range(count))
            else:
                finished = None
            if session.options.chunk_size not in (None, previous.chunk_size):
                note(f"{name}: keeping the interrupted upload's chunk size")
            note(
                f"{name}: resuming: the server has {len(received)} of {count} chunks,"
                f" {count - len(received)} to send"
            )
            return Plan(previous.dzuuid, previous.chunk_size, count, owner, received, finished)
    dzuuid = str(uuid.uuid4())
    owner = session.owner
    if owner is None:
        _, owner = _probe(session, dzuuid, None)
    chunk_size = session.options.chunk_size or auto_chunk_size(size, AUTO_CHUNK_FLOOR)
    saved.save_upload(
        saved.UploadState(str(path), url, dzuuid, chunk_size, identity, owner),
    )
    return Plan(dzuuid, chunk_size, chunk_count(size, chunk_size), owner, frozenset(), None)


class _Transfer:
    """One file's chunks in flight: a reader that hashes, N senders, and the first fatal error."""

    def __init__(
        self, session: Session, path: Path, file: io.FileIO, size: int, plan: Plan, handle: int
    ) -> None:
        self.session = session
        self.file = file
        self.fd = file.fileno()
        self.size = size
        self.plan = plan
        self.handle = handle
        self.filename = path.name
        self.hasher = hashlib.sha256()
        self.to_send = [i for i in range(plan.chunk_count) if i not in plan.received]
        self.piece_size = min(PIECE_SIZE, max(1, plan.chunk_size))
        self.abort = threading.Event()
        # The window holds no memory (the bytes wait in the page cache), so it is wide enough
        # to keep every sender busy.
        ahead = max(READ_AHEAD_BYTES, session.options.parallel * plan.chunk_size)
        starts = [(i, i * plan.chunk_size) for i in self.to_send]
        self.window = Window(starts, ahead, self.abort)
        self.lock = threading.Lock()
        self.error: TransferError | None = None
        self.finished_file: dict[str, Any] | None = plan.finished_file
        self.sent = 0
        self.headers = owner_headers(plan.owner) | {"X-Requested-With": "XMLHttpRequest"}

    def fail(self, error: TransferError) -> None:
        with self.lock:
            if self.error is None:
                self.error = error
        self.abort.set()

    # The reader: one sequential pass for the hash, which the senders follow.

    def read_all(self) -> None:
        try:
            self._read_all()
        except TransferError as error:
            self.fail(error)
        except OSError as error:
            self.fail(TransferError(f"{self.filename}: cannot read: {error.strerror}"))

    def _read_all(self) -> None:
        """Every byte read once, in order, into one reused buffer and hashed there (the chunks
        the server already has too: a resumed run still hashes it all); the senders follow."""
        buffer = bytearray(self.piece_size)
        done = 0
        self.file.seek(0)
        while done < self.size:
            view = memoryview(buffer)[: min(self.piece_size, self.size - done)]
            if _read_exactly(self.file, view) != len(view):
                raise TransferError(f"{self.filename}: the file shrank while uploading")
            self.hasher.update(view)  # releases the GIL: senders keep sending meanwhile
            done += len(view)
            if not self.window.read_to(done):
                return

    # The senders.

    def send_all(self, sender: int) -> None:
        with self._connection() as connection:
            try:
                while (index := self.window.claim(sender)) is not None:
                    try:
                        self._send_chunk(index, sender, connection)
                    except TransferError as error:
                        self.fail(error)
            finally:
                self.window.release(sender)

    @contextmanager
    def _connection(self) -> Iterator[wire.Connection | None]:
        """This thread's own connection for the chunk POSTs; None: they go through httpx."""
        pool = self.session.connections
        if pool is None:
            yield None
            return
        connection = pool.take()
        try:
            yield connection
        except BaseException:
            connection.close()  # maybe mid-request (Ctrl-C): never reuse it
            raise
        pool.give(connection)

    def _fields(self, index: int) -> list[tuple[str, str]]:
        chunk_size = self.plan.chunk_size
        return [
            ("dzuuid", self.plan.dzuuid),
            ("dzchunkindex", str(index)),
            ("dztotalfilesize", str(self.size)),
            ("dzchunksize", str(chunk_size)),
            ("dztotalchunkcount", str(self.plan.chunk_count)),
            ("dzchunkbyteoffset", str(index * chunk_size)),
            *self._lifecycle_fields(),
        ]

    def _lifecycle_fields(self) -> list[tuple[str, str]]:
        options = self.session.options
        fields = [("expires_in", options.expires_in)] if options.expires_in else []
        if options.max_downloads is not None:
            fields.append(("max_downloads", str(options.max_downloads)))
        return fields

    def _pieces(self, index: int, sender: int | None, ranges: bool) -> Generator[wire.Piece]:
        """The chunk piece by piece, each once the reader has read it (so from the page cache):
        as file ranges for `sendfile`, or else as bytes read here. `sender` None: no waiting
        (a chunk sent again at finish time, after the reader is done)."""
        offset = index * self.plan.chunk_size
        end = offset + chunk_length(index, self.size, self.plan.chunk_size)
        while offset < end:
            length = min(self.piece_size, end - offset)
            if sender is not None:
                self.window.sent_to(sender, offset)
                if not self.window.wait_read(offset + length):
                    raise _Aborted(f"{self.filename}: stopped")  # never a short body
            if ranges:
                yield wire.FileRange(self.fd, offset, length)
            else:
                piece = os.pread(self.fd, length, offset)
                if len(piece) != length:
                    raise TransferError(f"{self.filename}: the file shrank while uploading")
                yield piece
            offset += length
        if sender is not None:
            self.window.sent_to(sender, end)

    def _body(
        self, head: bytes, pieces: Iterator[wire.Piece], tail: bytes, counted: list[int]
    ) -> Generator[wire.Piece]:
        reporter, handle = self.session.reporter, self.handle
        yield head
        for piece in pieces:
            yield piece
            # Reached once the piece has gone to the socket.
            counted[0] += len(piece)
            reporter.advance(handle, len(piece))
        yield tail

    def _post(
        self,
        connection: wire.Connection | None,
        body: Iterator[wire.Piece],
        headers: dict[str, str],
    ) -> httpx.Response:
        if connection is not None:
            return connection.post("/upload", headers, body, int(headers["Content-Length"]))
        # Only bytes on this path (no file ranges: httpx can't sendfile).
        content = cast(Iterator[bytes], body)
        return self.session.http.post(self.session.upload_url, content=content, headers=headers)

    def _send_chunk(
        self, index: int, sender: int | None, connection: wire.Connection | None
    ) -> None:
        """POST one chunk, again after a transient failure (with growing pauses)."""
        length = chunk_length(index, self.size, self.plan.chunk_size)
        boundary = f"pyfiledrop{uuid.uuid4().hex}"
        head, tail = multipart_frame(boundary, self._fields(index), self.filename)
        headers = self.headers | {
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(len(head) + length + len(tail)),
        }
        attempt = 0
        while True:
            attempt += 1
            ranges = connection is not None and SENDFILE
            pieces = self._pieces(index, sender, ranges)
            counted = [0]
            body = self._body(head, pieces, tail, counted)
            try:
                response = self._post(connection, body, headers)
            except httpx.TransportError as error:
                failure, retry = describe_transport_error(error, self.session.options.url), True
            except wire.FileEnded:
                raise TransferError(f"{self.filename}: the file shrank while uploading") from None
            else:
                if response.is_success:
                    self._accepted(response, length)
                    return
                refuse_unauthorized(response)
                failure = f"the server refused chunk {index}: {server_error(response)}"
                retry = response.status_code >= 500 or response.status_code in RETRIED_CLIENT_ERRORS
            finally:
                body.close()
                pieces.close()
            self.session.reporter.advance(self.handle, -counted[0])
            if self.abort.is_set():
                return
            if not retry or attempt > self.session.options.retries:
                raise TransferError(f"{self.filename}: {failure}")
            delay = _backoff(attempt)
            self.session.reporter.note(
                f"{self.filename}: chunk {index}: {failure}; retrying in {delay:.1f} s"
            )
            if self.abort.wait(delay):
                return

    def _accepted(self, response: httpx.Response, length: int) -> None:
        data = json_body(response)
        with self.lock:
            self.sent += length
            if data and data.get("status") == "done" and isinstance(data.get("file"), dict):
                self.finished_file = data["file"]

    def run(self) -> None:
        """Send every missing chunk, N at a time; returns once all are in or one failed for good."""
        parallel = min(self.session.options.parallel, max(1, len(self.to_send)))
        # Daemon threads: Ctrl-C must end the process even with a chunk half sent.
        reader = threading.Thread(target=self.read_all, name="pfd-reader", daemon=True)
        senders = [
            threading.Thread(target=self.send_all, args=(n,), name=f"pfd-sender-{n}", daemon=True)
            for n in range(parallel)
        ]
        reader.start()
        for sender in senders:
            sender.start()
        try:
            for thread in [*senders, reader]:
                while thread.is_alive():
                    thread.join(POLL_SECONDS)
        except BaseException:
            self.abort.set()
            raise
        if self.error is not None:
            raise self.error

    def resend(self, indexes: list[int]) -> None:
        """Chunks the server reports missing at finish time: sent again, straight from disk."""
        with self._connection() as connection:
            for index in indexes:
                if not 0 <= index < self.plan.chunk_count:
                    raise TransferError(f"{self.filename}: the server asks for chunk {index}")
                self._send_chunk(index, None, connection)
                if self.error is not None:
                    raise self.error


def _finish(transfer: _Transfer) -> dict[str, Any] | None:
    """`POST /upload/<dzuuid>/finish` -> the file record; None when the server has no such call."""
    session = transfer.session
    path = f"/upload/{transfer.plan.dzuuid}/finish"
    for _ in range(FINISH_ROUNDS):
        if transfer.finished_file is not None:
            return transfer.finished_file
        try:
            response = session.fetch("POST", path, transfer.headers)
        except httpx.TransportError as error:
            raise TransferError(describe_transport_error(error, session.options.url)) from error
        data = json_body(response)
        if response.is_success and data and isinstance(data.get("file"), dict):
            return dict(data["file"])
        refuse_unauthorized(response)
        if response.status_code in (404, 405) or response.is_success:
            return None  # a Dropzone server without pyfiledrop's finish call
        missing = data.get("missing") if data and response.status_code == 409 else None
        if not isinstance(missing, list) or not missing:
            raise TransferError(f"{transfer.filename}: finishing failed: {server_error(response)}")
        session.reporter.note(
            f"{transfer.filename}: the server is missing {len(missing)} chunks; sending them again"
        )
        transfer.resend([int(i) for i in missing])
    raise TransferError(f"{transfer.filename}: the server keeps reporting missing chunks")


def upload_file(session: Session, path: Path, handle: int) -> UploadResult:
    path = path.absolute()
    name, url = path.name, session.options.url
    with open(path, "rb", buffering=0) as file:
        identity = saved.FileIdentity.of(path)
        plan = _plan(session, path, identity)
        if session.owner is None:
            session.owner = plan.owner
        already = sum(chunk_length(i, identity.size, plan.chunk_size) for i in plan.received)
        session.reporter.start_file(handle, already)
        started = time.monotonic()
        transfer = _Transfer(session, path, file, identity.size, plan, handle)
        transfer.run()
        record = _finish(transfer)
        seconds = time.monotonic() - started
        local_sha256 = transfer.hasher.hexdigest()
    if saved.FileIdentity.of(path) != identity:
        saved.delete_upload(path, url)
        raise TransferError(f"{name}: the file changed while uploading; run again to start over")
    saved.delete_upload(path, url)
    if record is None:
        session.reporter.note(f"{name}: the server does not report a SHA-256; not verified")
        remote_sha256 = None
    else:
        remote_sha256 = str(record.get("sha256", "")).lower() or None
    if remote_sha256 is not None and remote_sha256 != local_sha256:
        raise TransferError(
            f"{name}: SHA-256 mismatch: the server stored {remote_sha256},"
            f" the local file is {local_sha256}; the server's copy is damaged"
        )
    if record is not None and record.get("size") not in (None, identity.size):
        raise TransferError(
            f"{name}: the server stored {record.get('size')} bytes, not {identity.size}"
        )
    link = record.get("url") if record else None
    return UploadResult(
        name=str(record.get("name", name)) if record else name,
        id=str(record["id"]) if record and "id" in record else None,
        url=urljoin(f"{url}/", str(link)) if link else None,
        size=identity.size,
        sha256=local_sha256,
        seconds=seconds,
        sent=transfer.sent,
        verified=remote_sha256 is not None,
        delete_token=str(record["delete_token"]) if record and record.get("delete_token") else None,
    )


def upload_summary(result: UploadResult) -> str:
    check = "sha256 verified" if result.verified else "sha256 NOT verified"
    return (
        f"{result.name}: {format_size(result.size)} in {result.seconds:.1f} s"
        f" ({result.mbps:.0f} MB/s), {check}, {result.url or '(no link)'}"
        + (f", delete token {result.delete_token}" if result.delete_token else "")
    )
