"""`pyfiledrop download`: stream to `PATH.part`, resume it with Range, verify, rename into place.

The partial file's validator (the ETag it was fetched under) is kept in the state folder, so a
resumed request can say `If-Range`: if the file on the server changed meanwhile, the server sends
it whole and the download starts over instead of splicing two different files together.
"""

import hashlib
import mmap
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from pyfiledrop.client import state as saved
from pyfiledrop.client import wire
from pyfiledrop.client.direct import Writer, aligned_buffer
from pyfiledrop.client.progress import Reporter
from pyfiledrop.client.sizes import format_size, megabytes_per_second
from pyfiledrop.client.transport import TransferError, describe_transport_error, server_error

DEFAULT_RETRIES = 5
READ_PIECE_SIZE = 1 << 20
# Big reads: a few calls per MiB, not httpx's 16 (one piece each: read, write, hash, progress).
PIPE_BUFFER_SIZE = 4 << 20
PIPE_BUFFERS = 4
FLUSH_EVERY_BYTES = 64 << 20
_datasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
RETRY_DELAY_SECONDS = 1.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_FILENAME_STAR = re.compile(r"filename\*\s*=\s*UTF-8''([^;\s]+)", re.IGNORECASE)
Fill = Callable[[memoryview], int]  # fills a buffer from a body; fewer bytes only at its end
_FILENAME = re.compile(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"|filename\s*=\s*([^;\s]+)', re.I)


@dataclass(frozen=True)
class DownloadResult:
    name: str
    path: Path
    size: int
    sha256: str
    seconds: float
    received: int
    verified: bool

    @property
    def mbps(self) -> float:
        return megabytes_per_second(self.received, self.seconds)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
            "mbps": round(self.mbps, 1),
            "received": self.received,
            "verified": self.verified,
        }


def download_summary(result: DownloadResult) -> str:
    check = "sha256 verified" if result.verified else "sha256 NOT verified"
    return (
        f"{result.name}: {format_size(result.size)} in {result.seconds:.1f} s"
        f" ({result.mbps:.0f} MB/s), {check}, saved to {result.path}"
    )


def safe_filename(name: str) -> str:
    """A bare file name: no folders, no control characters, never empty or a dot name."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name if name and name not in {".", ".."} else "download"


def filename_from(response: httpx.Response) -> str:
    disposition = response.headers.get("content-disposition", "")
    star = _FILENAME_STAR.search(disposition)
    if star:
        return safe_filename(unquote(star.group(1), errors="replace"))
    plain = _FILENAME.search(disposition)
    if plain:
        quoted, bare = plain.group(1), plain.group(2)
        return safe_filename(re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare)
    return safe_filename(unquote(urlsplit(str(response.url)).path))


def advertised_sha256(response: httpx.Response) -> str | None:
    """`X-Checksum-SHA256`, else the ETag when it is a SHA-256 (pyfiledrop's ETag is)."""
    for header in ("x-checksum-sha256", "etag"):
        value: str = response.headers.get(header, "")
        if value:
            candidate = value.removeprefix("W/").strip('"').lower()
            if _SHA256.fullmatch(candidate):
                return candidate
    return None


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _resume_point(target: Path, url: str) -> tuple[int, str, str] | None:
    """(bytes already there, ETag they came with, resume token) when `target.part` can be
    continued."""
    previous = saved.load_download(target, url)
    part = _part_path(target)
    if previous is None or not part.exists():
        return None
    size = part.stat().st_size
    return (size, previous.etag, previous.resume_token) if size > 0 else None


def _resume_headers(resume: tuple[int, str, str] | None) -> dict[str, str]:
    if resume is None:
        return {}
    headers = {"Range": f"bytes={resume[0]}-", "If-Range": resume[1]}
    if resume[2]:
        headers["X-Resume-Token"] = resume[2]
    return headers


def _hash_prefix(part: Path, length: int) -> "hashlib._Hash":
    hasher = hashlib.sha256()
    with open(part, "rb") as file:
        remaining = length
        while remaining:
            piece = file.read(min(READ_PIECE_SIZE, remaining))
            if not piece:
                raise TransferError(f"{part}: the partial file shrank")
            hasher.update(piece)
            remaining -= len(piece)
    return hasher


def _pipe(
    fill: Fill, file: Writer, offset: int, hasher: "hashlib._Hash", advance: Callable[[int], None]
) -> int:
    """The body into the file from `offset` through a few reused buffers: each is received here,
    then written on one thread and hashed on another while the next ones are received (the
    write and hashlib let go of the GIL). Returns where the body ended."""
    free: queue.SimpleQueue[mmap.mmap] = queue.SimpleQueue()
    for _ in range(PIPE_BUFFERS):
        free.put(aligned_buffer(PIPE_BUFFER_SIZE))  # unmapped once the last reference goes
    to_write: queue.SimpleQueue[tuple[mmap.mmap, int, int] | None] = queue.SimpleQueue()
    to_hash: queue.SimpleQueue[tuple[mmap.mmap, int] | None] = queue.SimpleQueue()
    failed: list[OSError] = []

    def write_all() -> None:
        while (item := to_write.get()) is not None:
            buffer, length, at = item
            if not failed:
                with memoryview(buffer) as view:
                    try:
                        file.write_at(view[:length], at)
                    except OSError as error:
                        failed.append(error)
            to_hash.put((buffer, length))
        to_hash.put(None)

    def hash_all() -> None:
        while (item := to_hash.get()) is not None:
            buffer, length = item
            with memoryview(buffer) as view:
                hasher.update(view[:length])
            free.put(buffer)

    threads = [
        threading.Thread(target=write_all, name="pfd-writer", daemon=True),
        threading.Thread(target=hash_all, name="pfd-hasher", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        while not failed:
            buffer = free.get()
            with memoryview(buffer) as view:
                length = fill(view)
            to_write.put((buffer, length, offset))
            offset += length
            advance(length)
            if length < len(buffer):
                break  # the end of the body
    finally:
        to_write.put(None)
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    return offset


@contextmanager
def _flushing(fd: int) -> Iterator[Callable[[int], None]]:
    """A thread that writes the file back to disk as it grows, so the fsync before the rename
    does not wait for the whole file at the end (~0.5 s per GiB here, for what went through the
    page cache: direct writes leave it little); yields the function to call with each piece's
    size."""
    due = threading.Event()
    done = False

    def flush() -> None:
        while due.wait() and not done:
            due.clear()
            with suppress(OSError):  # the final fsync reports what matters
                _datasync(fd)

    flusher = threading.Thread(target=flush, name="pfd-flusher", daemon=True)
    flusher.start()
    unflushed = 0

    def written(nbytes: int) -> None:
        nonlocal unflushed
        unflushed += nbytes
        if unflushed >= FLUSH_EVERY_BYTES:
            unflushed = 0
            due.set()

    try:
        yield written
    finally:
        done = True
        due.set()
        flusher.join()


class _Chunks:
    """httpx's pieces of a body (when it fetches: TLS, proxies) as a `fill` for `_pipe`."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._rest = memoryview(b"")

    def __call__(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view):
            if not self._rest:
                piece = next(self._pieces, None)
                if piece is None:
                    break
                self._rest = memoryview(piece)
            take = min(len(self._rest), len(view) - filled)
            view[filled : filled + take] = self._rest[:take]
            self._rest = self._rest[take:]
            filled += take
        return filled


@contextmanager
def _get(
    http: httpx.Client, url: str, headers: dict[str, str]
) -> Iterator[tuple[httpx.Response, Fill]]:
    """GET `url`: the answer and a `fill` for its body, over `wire` where it can."""
    if not wire.usable(url):
        with http.stream("GET", url, headers=headers) as response:
            yield response, _Chunks(response.iter_bytes())
        return
    connection, path = _connection_to(http, url)
    try:
        with connection.get(path, headers) as (response, raw):
            yield response, partial(wire.read_into, raw)
    finally:
        connection.close()


def _head(http: httpx.Client, url: str) -> httpx.Response:
    if not wire.usable(url):
        return http.head(url)
    connection, path = _connection_to(http, url)
    try:
        return connection.fetch("HEAD", path, {})
    finally:
        connection.close()


def _connection_to(http: httpx.Client, url: str) -> tuple[wire.Connection, str]:
    """A `wire` connection to `url`'s server (with the client's headers), and the path to ask."""
    parts = urlsplit(url)
    connection = wire.Connection(f"{parts.scheme}://{parts.netloc}", http.headers)
    return connection, (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Attempt:
    """One GET: where it writes, from which offset, and what the server promised."""

    def __init__(self, url: str, target: Path, reporter: Reporter, flush: bool) -> None:
        self.url = url
        self.target = target
        self.reporter = reporter
        self.flush = flush
        self.handle: int | None = None
        self.received = 0

    def _advance(self, nbytes: int) -> None:
        self.received += nbytes
        if self.handle is not None:
            self.reporter.advance(self.handle, nbytes)

    def receive(
        self, response: httpx.Response, fill: Fill, resume: tuple[int, str, str] | None
    ) -> tuple[str, bool]:
        """Write the body to the .part file: (its SHA-256, whether the server's matched it)."""
        part = _part_path(self.target)
        name = self.target.name
        offset = 0
        if response.status_code == 206 and resume is not None:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("content-range", ""))
            if match is None or int(match.group(1)) != resume[0]:
                raise TransferError(f"{name}: the server answered a different range")
            offset, total = resume[0], int(match.group(3))
        elif response.status_code == 200:
            if resume is not None:
                self.reporter.note(
                    f"{name}: starting over: the file on the server changed"
                    " or the server cannot resume"
                )
            total = int(response.headers.get("content-length", "-1"))
        else:
            raise TransferError(f"{name}: {server_error(response)}")
        expected = advertised_sha256(response)
        etag = response.headers.get("etag")
        if etag:
            # A resumed answer hands out no new token: keep the one of the counted download.
            token = response.headers.get("x-resume-token") or (resume[2] if resume else "")
            saved.save_download(saved.DownloadState(str(self.target), self.url, etag, token))
        else:
            saved.delete_download(self.target, self.url)
        hasher = _hash_prefix(part, offset) if offset else hashlib.sha256()
        if self.handle is None:
            self.handle = self.reporter.add_file(name, max(total, 0))
            self.reporter.start_file(self.handle, offset)
        elif offset == 0:
            self.reporter.advance(self.handle, -self.received)
            self.received = 0
        written = self._write_body(fill, part, offset, hasher)
        if total >= 0 and written != total:
            raise httpx.RemoteProtocolError(f"got {written} of {total} bytes")
        actual = hasher.hexdigest()
        if expected is not None and actual != expected:
            part.unlink(missing_ok=True)
            saved.delete_download(self.target, self.url)
            raise TransferError(
                f"{name}: SHA-256 mismatch: the server advertises {expected}, the bytes received"
                f" hash to {actual}; removed the partial file"
            )
        return actual, expected is not None

    def _write_body(self, fill: Fill, part: Path, offset: int, hasher: "hashlib._Hash") -> int:
        """The body into `part` from `offset`, on disk before this returns unless `flush` is
        off (then it is in the page cache, as curl leaves it). Returns where the body ended."""
        with open(part, "r+b" if offset else "wb", buffering=0) as file:
            file.truncate(offset)
            file.seek(offset)
            if not self.flush:
                writer = Writer(part, file.fileno(), direct=False)
                return _pipe(fill, writer, offset, hasher, self._advance)
            with _flushing(file.fileno()) as flushed:

                def progress(nbytes: int) -> None:
                    self._advance(nbytes)
                    flushed(nbytes)

                writer = Writer(part, file.fileno())
                try:
                    written = _pipe(fill, writer, offset, hasher, progress)
                finally:
                    writer.close()
            os.fsync(file.fileno())  # only the last few MiB are left to write by now
            return written


def _name_by_head(http: httpx.Client, url: str, folder: Path) -> Path | None:
    """The file's name from a HEAD (which counts as no download); None if HEAD doesn't tell,
    and then the GET names it (and its answer explains any refusal better than a HEAD's)."""
    try:
        response = _head(http, url)
    except httpx.TransportError:
        return None
    if not response.is_success:
        return None
    return (folder / filename_from(response)).absolute()


def download_file(
    http: httpx.Client,
    url: str,
    output: Path | None,
    reporter: Reporter,
    retries: int = DEFAULT_RETRIES,
    flush: bool = True,
) -> DownloadResult:
    """Into `output` (a file, or a folder for the server's name; the current folder if None).
    With `flush` (the default) the file is on disk before it is renamed into place, so a crash
    right after "verified" cannot lose it (a one-time link can't be fetched again); without,
    it is left in the page cache for the kernel to write back, as curl does."""
    folder = output if output is not None and output.is_dir() else Path.cwd()
    target = output.absolute() if output is not None and not output.is_dir() else None
    # Refuse an existing file before any GET: a GET may use up a one-time link.
    if target is None:
        target = _name_by_head(http, url, folder)
    if target is not None and target.exists():
        raise TransferError(f"{target} exists; choose another name with -o PATH")
    attempt: _Attempt | None = None
    started = time.monotonic()
    failures = 0
    while True:
        resume = _resume_point(target, url) if target is not None else None
        headers = _resume_headers(resume)
        try:
            with _get(http, url, headers) as (response, fill):
                if target is None:
                    if not response.is_success:
                        raise TransferError(f"{url}: {server_error(response)}")
                    target = (folder / filename_from(response)).absolute()
                    if target.exists():
                        raise TransferError(f"{target} exists; choose another name with -o PATH")
                    if _resume_point(target, url) is not None:
                        continue  # now that the name is known: ask again, from where we stopped
                if response.status_code == 416 and resume is not None:
                    # Already whole but never verified and renamed: fetch it again to be sure.
                    _part_path(target).unlink(missing_ok=True)
                    saved.delete_download(target, url)
                    continue
                if attempt is None:
                    attempt = _Attempt(url, target, reporter, flush)
                sha256, verified = attempt.receive(response, fill, resume)
            break
        except httpx.TransportError as error:
            failures += 1
            failure = describe_transport_error(error, url)
            if failures > retries:
                raise TransferError(f"{failure}; run the same command again to resume") from error
            reporter.note(f"{failure}; resuming in {RETRY_DELAY_SECONDS * failures:.0f} s")
            time.sleep(RETRY_DELAY_SECONDS * failures)
    assert target is not None and attempt is not None
    part = _part_path(target)
    size = part.stat().st_size
    os.replace(part, target)
    saved.delete_download(target, url)
    if attempt.handle is not None:
        reporter.end_file(attempt.handle)
    if not verified:
        reporter.note(f"{target.name}: the server advertises no SHA-256; not verified")
    return DownloadResult(
        name=target.name,
        path=target,
        size=size,
        sha256=sha256,
        seconds=time.monotonic() - started,
        received=attempt.received,
        verified=verified,
    )
