"""Local disk: one sparse `<id>.part` per upload (each chunk's range allocated as that chunk
starts), positional writes, publish by link.

The chunk bytes are gathered into batches of about 1 MiB and written by a worker thread while the
event loop parses the next batch (see docs/ARCHITECTURE.md: one batch in flight per request
overlaps the network and the disk without unbounded memory). A big batch is hashed (`on_written`)
by another worker at the same time as it is written: both only read it, and SHA-256 (~0.7 s/GiB)
after the copy into the page cache on one thread capped a single stream near 1 GiB/s. Hashes stay
in order (one hash in flight per sink), and a chunk is done only when both are.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import itertools
import mmap
import os
import struct
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

from pyfiledrop.errors import NoSpace
from pyfiledrop.names import name_candidates
from pyfiledrop.storage import MAX_CHUNK_COUNT, Buffer, OnWritten, PartRules, Shape

BATCH_BYTES = 1024 * 1024
MIN_BATCH_BYTES = 64 * 1024
# What all open sinks together may hold in batches (gathering + in flight): with many uploads at
# once each batch gets smaller, so memory stays bounded (about 2 batches per sink). 16 MiB, not
# 32: with 128 chunks in flight the batches and the receive buffers (web/body_takeover.py)
# together kept the server above 100 MiB; one stream still gets 1 MiB batches.
BATCH_BUDGET_BYTES = 16 * 1024 * 1024
PUBLISH_WAIT_SECONDS = 30.0
# Smaller batches (many uploads at once) are written and hashed by one job: a second thread
# hop per batch cost more there than the overlap gained.
SPLIT_HASH_BYTES = 512 * 1024
# With flush on, the kernel is asked to start writing the bytes back every this many bytes (and
# at a chunk's end), so the fdatasync before a file counts finds little left to write.
WRITEBACK_BYTES = 8 * 1024 * 1024
BATCH_PIECES = 256  # well under IOV_MAX (1024)
READ_BYTES = 1024 * 1024
HASH_MAP_BYTES = 2 * 1024 * 1024  # mapped at a time to hash (8 MiB: no faster, more RSS)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)  # no fault per page
IO_THREADS = 8  # 16 held more buffers and arenas than two cores can keep busy
MAX_NAME_TRIES = 200  # a hundred numbered names, then random suffixes

FICLONERANGE = 0x4020940D  # linux/fs.h: share extents (btrfs, XFS with reflink, bcachefs)
COPY_BYTES = 64 * 1024 * 1024

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to begin writing these dirty pages now, so the final fdatasync is short."""
    with contextlib.suppress(AttributeError, OSError):
        _libc.sync_file_range(fd, ctypes.c_int64(offset), ctypes.c_int64(length),
                              _SYNC_FILE_RANGE_WRITE)  # fmt: skip


def _pwrite_all(fd: int, pieces: list[Buffer], offset: int, writeback_from: int | None) -> None:
    """Write the batch at `offset`; then, given `writeback_from`, start the writeback of
    everything from there to the batch's end."""
    while pieces:
        written = os.pwritev(fd, pieces, offset)
        offset += written
        # A short write (rare: signals, nearly full disks) leaves a tail to retry.
        while pieces and written >= len(pieces[0]):
            written -= len(pieces[0])
            pieces = pieces[1:]
        if pieces and written:
            pieces = [memoryview(pieces[0])[written:], *pieces[1:]]
    if writeback_from is not None:
        _start_writeback(fd, writeback_from, offset - writeback_from)


def _write_batch(
    fd: int,
    pieces: list[Buffer],
    offset: int,
    writeback_from: int | None,
    on_written: OnWritten | None,
) -> None:
    _pwrite_all(fd, pieces, offset, writeback_from)
    if on_written is not None:
        on_written(pieces)


async def _outcome(job: Future[None]) -> None:
    """A pool job's result; the loop is woken by the job only if it is still running."""
    if not job.done():
        await asyncio.wrap_future(job)
    job.result()


def _raise_mapped(error: OSError) -> NoReturn:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise NoSpace("the server's disk is full; try again later") from error
    raise error


class _OpenSinks:
    """How many sinks are open in this process, which sets how large each one's batches are."""

    def __init__(self) -> None:
        self.count = 0
        self.batch_bytes = BATCH_BYTES
        self.by_upload: dict[str, int] = {}

    def change(self, delta: int, upload_id: str = "") -> None:
        self.count += delta
        left = self.by_upload.get(upload_id, 0) + delta
        if left > 0:
            self.by_upload[upload_id] = left
        else:
            self.by_upload.pop(upload_id, None)
        share = BATCH_BUDGET_BYTES // (2 * max(1, self.count))
        self.batch_bytes = max(MIN_BATCH_BYTES, min(BATCH_BYTES, share))


class LocalChunkSink:
    def __init__(
        self,
        fd: int,
        offset: int,
        executor: Executor,
        writeback: bool,
        on_written: OnWritten | None = None,
        open_sinks: _OpenSinks | None = None,
        upload_id: str = "",
    ) -> None:
        self._open_sinks = open_sinks or _OpenSinks()
        self._upload_id = upload_id
        self._open_sinks.change(+1, upload_id)
        self._fd = fd
        self._on_written = on_written
        self._start = offset
        self._offset = offset  # where the next batch goes
        self._executor = executor
        self._writeback = writeback
        self._unflushed = offset  # where the bytes not yet sent to writeback start
        self._batch: list[Buffer] = []
        self._batched = 0
        self._in_flight: Future[None] | None = None
        self._hashing: Future[None] | None = None
        self._closed = False

    async def write(self, data: Buffer) -> None:
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= self._open_sinks.batch_bytes or len(self._batch) >= BATCH_PIECES:
            await self._submit()

    async def _submit(self, last: bool = False) -> None:
        await self._settle()
        if not self._batch:
            start = self._writeback_from(self._offset, last)
            if start is not None and start < self._offset:  # the sink's end, after a full batch
                writeback = self._executor.submit(
                    _start_writeback, self._fd, start, self._offset - start
                )
                self._in_flight = writeback
            return
        batch, size = self._batch, self._batched
        self._batch, self._batched = [], 0
        writeback_from = self._writeback_from(self._offset + size, last)
        # Submitted to the pool, not through the loop (run_in_executor): a loop future costs a
        # wake-up of the loop per job when it ends (~2 per batch, each a cross-CPU wake), while
        # the next batch usually finds this one done already and needs none (`_settle`).
        submit = self._executor.submit
        if self._on_written is not None and size >= SPLIT_HASH_BYTES:
            self._hashing = submit(self._on_written, batch)
            self._in_flight = submit(_pwrite_all, self._fd, batch, self._offset, writeback_from)
        else:
            self._in_flight = submit(
                _write_batch, self._fd, batch, self._offset, writeback_from, self._on_written
            )
        self._offset += size

    def _writeback_from(self, end: int, last: bool) -> int | None:
        """Where the writeback started after this batch begins (None: none this time). Every
        WRITEBACK_BYTES and at a sink's end, not every batch: the writeback runs on the server's
        thread (~0.05 s/GiB with flush; without, the kernel's flusher does it off its books), and
        longer ranges are sent to the disk in fewer, bigger requests."""
        if not self._writeback or (end - self._unflushed < WRITEBACK_BYTES and not last):
            return None
        start, self._unflushed = self._unflushed, end
        return start

    async def _settle(self) -> None:
        """Wait for the batch in flight: its write (a full disk is 507) and its hash."""
        in_flight, hashing = self._in_flight, self._hashing
        self._in_flight = self._hashing = None
        try:
            if in_flight is not None:
                try:
                    await _outcome(in_flight)
                except OSError as error:
                    _raise_mapped(error)
        finally:
            if hashing is not None:
                await _outcome(hashing)

    async def finish(self) -> int:
        try:
            await self._submit(last=True)
            await self._settle()  # the last batch
        finally:
            self._close()
        return self._offset - self._start

    async def abort(self) -> None:
        for pending in (self._in_flight, self._hashing):
            if pending is not None:
                with contextlib.suppress(OSError):
                    await asyncio.shield(_outcome(pending))
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._open_sinks.change(-1, self._upload_id)
            os.close(self._fd)


class LocalStorage:
    """`storage.Storage` on a local filesystem, with every optional ability but presigned URLs."""

    parts = PartRules(min_bytes=1, max_count=MAX_CHUNK_COUNT, any_offset=True)

    def __init__(self, storage: Path, partials: Path, writeback: bool = True) -> None:
        self.root = storage.resolve()
        self.partials = partials.resolve()
        self.writeback = writeback
        self.executor = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="pfd-io")
        self.open_sinks = _OpenSinks()

    def partial_path(self, upload_id: str) -> Path:
        return self.partials / f"{upload_id}.part"

    def final_path(self, path: str) -> Path:
        full = (self.root / path).resolve()
        if full.parent != self.root:
            raise ValueError(f"stored path {path!r} is outside the storage folder")
        return full

    async def _run(self, function: object, *args: object) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, function, *args)  # type: ignore[arg-type]

    async def create_partial(self, upload: Shape) -> None:
        await self._run(self._create_partial, upload.id, upload.size)

    def _create_partial(self, upload_id: str, size: int | None) -> None:
        # Sized but sparse: blocks are allocated chunk by chunk as writers start (open_chunk), so
        # an upload that stops sending holds no more space than it wrote (see guard.py).
        path = self.partial_path(upload_id)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as error:
            _raise_mapped(error)  # no inode left is ENOSPC too
        try:
            if size and os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)
        except OSError as error:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            _raise_mapped(error)
        else:
            os.close(fd)

    async def open_chunk(
        self,
        upload: Shape,
        offset: int,
        on_written: OnWritten | None = None,
        length: int | None = None,
    ) -> LocalChunkSink:
        upload_id = upload.id
        fd = os.open(self.partial_path(upload_id), os.O_WRONLY)
        if length:
            try:
                await self._run(os.posix_fallocate, fd, offset, length)
            except OSError as error:
                os.close(fd)
                _raise_mapped(error)
        return LocalChunkSink(
            fd, offset, self.executor, self.writeback, on_written, self.open_sinks, upload_id
        )

    async def join_partials(self, upload_id: str, parts: list[tuple[str, int]]) -> str:
        """Make `upload_id`'s partial the concatenation of the first `size` bytes of each part.

        Extents are shared (FICLONERANGE) where the filesystem can and the offsets are
        block-aligned, else copied inside the kernel (copy_file_range): no byte passes through
        this process either way. Returns how: "clone", "copy" or "clone+copy".
        """
        return await self._run(self._join_partials, upload_id, parts)  # type: ignore[return-value]

    def _join_partials(self, upload_id: str, parts: list[tuple[str, int]]) -> str:
        target = os.open(self.partial_path(upload_id), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        ways: set[str] = set()
        try:
            block = os.fstat(target).st_blksize
            position = 0
            for number, (part_id, size) in enumerate(parts):
                source = os.open(self.partial_path(part_id), os.O_RDONLY)
                try:
                    last = number == len(parts) - 1
                    aligned = position % block == 0 and (size % block == 0 or last)
                    if aligned and size and _clone_range(source, target, size, position):
                        ways.add("clone")
                    else:
                        _copy_range(source, target, size, position)
                        ways.add("copy")
                finally:
                    os.close(source)
                position += size
            os.ftruncate(target, position)
        except OSError as error:
            os.close(target)
            _raise_mapped(error)
        os.close(target)
        return "+".join(sorted(ways)) or "copy"

    async def hash_partial(self, upload_id: str, hasher: Any, start: int, end: int) -> None:
        path = self.partial_path(upload_id)
        await self._run(hash_file_range, path, hasher, start, end)

    async def orphan_partials(self, idle_since: float) -> list[str]:
        found = []
        for entry in os.scandir(self.partials):
            if entry.name.endswith(".part") and entry.stat().st_mtime < idle_since:
                found.append(entry.name[: -len(".part")])
        return found

    async def truncate_partial(self, upload_id: str, size: int) -> None:
        os.truncate(self.partial_path(upload_id), size)

    async def size_of(self, path: str) -> int | None:
        try:
            return self.final_path(path).stat().st_size
        except FileNotFoundError:
            return None

    async def flush_partial(self, upload_id: str) -> None:
        try:
            await self._run(_fdatasync_file, self.partial_path(upload_id))
        except OSError as error:
            _raise_mapped(error)  # delayed allocation or NFS can report a full disk only here

    async def publish(self, upload_id: str, name: str, taken: set[str]) -> str:
        # A retried chunk may still be writing (the same bytes) into the partial; once linked, its
        # writes would land in the published file, so let it finish first (bounded wait).
        deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
        while self.open_sinks.by_upload.get(upload_id) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        source = self.partial_path(upload_id)
        return await self._run(self._link_unique, source, name, taken)  # type: ignore[return-value]

    async def link_duplicate(
        self, upload_id: str, existing_path: str, name: str, taken: set[str]
    ) -> str | None:
        existing = self.final_path(existing_path)
        try:
            path: str = await self._run(self._link_unique, existing, name, taken)  # type: ignore[assignment]
        except OSError:
            return None  # e.g. too many links, or the original vanished: store a copy instead
        return path

    def _link_unique(self, source: Path, name: str, taken: set[str]) -> str:
        """Link `source` into the storage folder under the first free `name (n).ext`.

        A link never replaces an existing file, so two finishers can't overwrite each other, and
        a crash between link and bookkeeping is recognised by the inode on the next attempt (the
        partial stays until the file is recorded, see `publish`).
        """
        source_inode = source.stat().st_ino
        for candidate in itertools.islice(name_candidates(name), MAX_NAME_TRIES):
            target = self.root / candidate
            try:
                os.link(source, target)
            except FileExistsError:
                # lstat: a dangling symlink of this name is just a taken name
                if candidate not in taken and target.lstat().st_ino == source_inode:
                    break  # our own earlier, unrecorded attempt
                continue
            except OSError as error:
                _raise_mapped(error)  # a full directory or no inode left: 507
            if candidate in taken:
                os.unlink(target)
                continue
            break
        else:
            raise OSError(errno.EEXIST, f"no free name for {name!r}")
        _fsync_dir(self.root)
        return candidate

    async def discard_partial(self, upload_id: str) -> None:
        await self._run(self._discard_partial, upload_id)

    def _discard_partial(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.partial_path(upload_id).unlink()
            _fsync_dir(self.partials)

    async def delete(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.final_path(path).unlink()

    async def exists(self, path: str) -> bool:
        return self.final_path(path).is_file()

    async def open_range(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        fd = os.open(self.final_path(path), os.O_RDONLY)
        try:
            position = start
            while position < end:
                length = min(READ_BYTES, end - position)
                piece: bytes = await self._run(os.pread, fd, length, position)  # type: ignore[assignment]
                if not piece:
                    break
                position += len(piece)
                yield piece
        finally:
            os.close(fd)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def unallocated(self, upload_id: str, size: int) -> int:
        try:
            allocated = os.stat(self.partial_path(upload_id)).st_blocks * 512
        except FileNotFoundError:
            allocated = 0
        return max(0, size - allocated)

    def writable(self) -> bool:
        return all(
            os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
            for folder in (self.root, self.partials)
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True)


def _clone_range(source: int, target: int, size: int, position: int) -> bool:
    # The last part may end mid-block: the kernel allows that when it ends the source file.
    request = struct.pack("qQQQ", source, 0, size, position)
    try:
        fcntl.ioctl(target, FICLONERANGE, request)
    except OSError as error:
        if error.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS):
            return False
        raise
    return True


def _copy_range(source: int, target: int, size: int, position: int) -> None:
    copied = 0
    while copied < size:
        length = min(COPY_BYTES, size - copied)
        done = os.copy_file_range(source, target, length, copied, position + copied)
        if done == 0:
            raise OSError(errno.EIO, "a partial upload is shorter than its recorded size")
        copied += done


def _fdatasync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file_range(path: os.PathLike[str], hasher: Any, start: int, end: int) -> None:
    """Hash bytes `start` to `end` of a file straight from the page cache: mapped, not read into
    a buffer first (the copy cost ~0.06-0.1 s/GiB, and most of a chunked upload is hashed this
    way: chunks in flight together can't all start where the hash stands)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        # A mapping's pages past the file's end fault (SIGBUS): never map past it.
        if os.fstat(fd).st_size < end:
            raise OSError(f"{path} is shorter than expected")
        position = start
        while position < end:
            base = position - position % mmap.ALLOCATIONGRANULARITY
            length = min(end - base, HASH_MAP_BYTES)
            with (
                mmap.mmap(fd, length, flags=_MAP_FLAGS, prot=mmap.PROT_READ, offset=base) as mapped,
                memoryview(mapped) as whole,
                whole[position - base :] as view,
            ):
                hasher.update(view)
            position = base + length
    finally:
        os.close(fd)
