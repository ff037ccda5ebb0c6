"""Uploads received in order at a byte offset (tus): create, write, join, terminate.

The protocol module translates tus's headers into these calls; this module decides, in the same
books as every other upload. An offset upload is an upload row with protocol "tus", one chunk as
large as the file, and `byte_offset`, the bytes stored so far. A write takes the upload's lock (a
short lease in its row, renewed), streams to the partial file at the offset, hashes the bytes on the
I/O thread as they are written, and then advances the offset by what was written: all of it, even
when the request was cut off, unless a checksum must vouch for the bytes first. A long write saves
as it goes (fdatasync, then the offset), so a crash loses at most the last second of it. When the
offset reaches the size, the core counts the one chunk and finalizes as for any upload (SHA-256,
dedup, publish once); the partial file is first cut to the size, as bytes of a refused request may
lie past it.

A request that finds the lock held asks the holder to let go (a flag in the row, and in this
process an event): the holder stops reading, saves what it wrote and releases, so a client whose
connection died, or a retry that came on a new connection, takes over at once (as in tusd 2.x).
Uploads of a deferred length are admitted like a stream while they grow, and again in full when the
length becomes known; a concatenation is admitted before any byte is copied.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pyfiledrop import guard, limits
from pyfiledrop.errors import (
    BadRequest,
    ChecksumMismatch,
    Conflict,
    Forbidden,
    Gone,
    Locked,
    NotFound,
    PayloadTooLarge,
)
from pyfiledrop.meta import StoredFile, Upload, queries
from pyfiledrop.meta import offsets as books
from pyfiledrop.names import sanitize
from pyfiledrop.storage import Buffer, ChunkSink, OnWritten
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.uploads import Uploads, log_upload_start

log = logging.getLogger("pyfiledrop")

PROTOCOL = "tus"
PARTIAL = "partial"
# The lease is short so that the lock of a process that died (one of several) frees itself soon;
# the holder renews it, and looks whether another request asked for the lock, every KEEP_SECONDS.
LOCK_LEASE_SECONDS = 5.0
KEEP_SECONDS = 0.5
TAKEOVER_WAIT_SECONDS = 3.0  # how long a request waits for a holder it asked to let go
TAKEOVER_POLL_SECONDS = 0.05
# A long write saves what it wrote (fdatasync, then the offset) after this many bytes or seconds.
SAVE_BYTES = 32 * 1024 * 1024
SAVE_SECONDS = 1.0
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")


@dataclass(frozen=True)
class NewUpload:
    owner: str
    size: int | None  # None: deferred until a later write says it
    filename: str | None = None
    content_type: str | None = None
    metadata: str | None = None
    concat: str | None = None  # "partial" for a part of a later concatenation


@dataclass(frozen=True)
class Checksum:
    algorithm: str
    digest: bytes


class Interrupted(Locked):
    """The request stopped because another request for its upload asked for the lock."""

    code = "interrupted"


@dataclass
class Write:
    """One request's bytes on their way to the upload, under its lock."""

    uploads: Uploads
    upload: Upload
    holder: str
    start: int
    limit: int  # the most bytes this request may bring
    sink: ChunkSink
    on_written: OnWritten
    file_hash: Any  # SHA-256 of the file so far, advanced on the I/O thread; None for a part
    checksum: Checksum | None
    body_hash: Any
    check_stream: guard.StreamGuard | None = None  # a deferred length: admitted as it grows
    keeper: asyncio.Task[None] | None = None
    received: int = 0
    saved: int = 0  # of `received`, what is durable and counted in the upload's offset
    saved_at: float = field(default_factory=time.monotonic)
    stopping: bool = False  # another request asked for the lock
    waiting: asyncio.Timeout | None = None  # set by the body reader while it awaits a piece

    @property
    def offset(self) -> int:
        """The upload's recorded offset: where this request's unsaved bytes begin."""
        return self.start + self.saved

    async def feed(self, piece: Buffer) -> None:
        self.received += len(piece)
        if self.received > self.limit:
            raise PayloadTooLarge("the body goes past the upload's length (or the size limit)")
        if self.check_stream is not None:
            await self.check_stream(self.start + self.received)  # before the piece is written
        await self.sink.write(piece)
        if self.received - self.saved >= SAVE_BYTES or time.monotonic() >= self.save_due():
            await self.save()

    def save_due(self) -> float:
        """When (time.monotonic) the bytes received since the last save should be saved."""
        # A body with a checksum counts only whole, so it has nothing to save on the way.
        if self.checksum is not None or self.received == self.saved:
            return math.inf
        return self.saved_at + SAVE_SECONDS

    async def save(self) -> None:
        if self.checksum is None and self.received > self.saved:
            await _save(self.uploads, self)
        self.saved_at = time.monotonic()

    def stop(self) -> None:
        """Let go soon: the body reader stops at once if it is waiting for the client."""
        self.stopping = True
        if self.waiting is not None:
            self.waiting.reschedule(asyncio.get_running_loop().time())


# This process's writes in progress, by lock holder: a request asks one of them to stop directly.
_writers: dict[str, Write] = {}


@dataclass(frozen=True)
class Outcome:
    upload: Upload
    stored: StoredFile | None = None


def check_available(uploads: Uploads) -> None:
    """Offset uploads write pieces of any size at any offset: a store with a minimum part size
    (S3) can't take them, so tus is refused outright there rather than failing per PATCH."""
    if uploads.storage.min_chunk_size > 1:
        raise NotFound(
            "tus is not available on this server (its files go to S3): use Dropzone chunks or PUT"
        )


def expires(uploads: Uploads, upload: Upload) -> float | None:
    """When the janitor may remove this unfinished upload (the core's `abandon_after`)."""
    if upload.state == "done":
        return None
    return upload.updated + uploads.settings.abandon_after


def check_size(uploads: Uploads, size: int) -> None:
    if size > uploads.settings.max_size_bytes:
        raise PayloadTooLarge(f"file is larger than the limit of {uploads.settings.max_size} MiB")


async def release_dead_locks(uploads: Uploads) -> int:
    """At the start of the only server process: write locks left by a crash belong to no one, and
    a client retrying at once must not be refused while they run out."""
    released = await uploads.db.run(books.release_all_locks)
    if released:
        log.warning("released %d tus lock(s) left by a previous run", released)
    return released


async def create(uploads: Uploads, new: NewUpload) -> Outcome:
    if new.size is not None:
        check_size(uploads, new.size)
    now = uploads.clock()
    upload = _new_upload(new, new.owner, new.size, now)

    async def create_upload() -> Upload:
        await uploads.storage.create_partial(upload.id, new.size)
        return await uploads.db.run(queries.insert_upload, upload)

    # The disk guard and quotas, as for every new upload.
    upload = await uploads.admit(new.owner, new.size, then=create_upload) or upload
    log_upload_start(upload.id, upload.protocol, new.size, 1)
    uploads.counters["chunk_requests"] += 1
    if new.size == 0 and new.concat is None:
        return await _complete(uploads, upload)
    return Outcome(upload)


async def find(uploads: Uploads, upload_id: str) -> Upload:
    """The upload behind a URL; 404 if unknown, 410 (and removed) once it has expired."""
    try:
        upload_id = str(uuid.UUID(upload_id))
    except ValueError:
        raise NotFound("no such upload") from None
    upload = await uploads.db.run(queries.get_upload, upload_id)
    if upload is None or upload.protocol != PROTOCOL:
        raise NotFound("no such upload")
    now = uploads.clock()
    deadline = expires(uploads, upload)
    if (
        deadline is not None
        and deadline < now
        and upload.state == "receiving"
        and (upload.lock_until or 0) < now
    ):
        await _discard(uploads, upload)
        raise Gone("this upload expired and was removed; start a new one")
    return upload


async def begin_write(
    uploads: Uploads,
    upload_id: str,
    offset: int,
    length: int | None,
    checksum: Checksum | None,
) -> Write:
    upload = await find(uploads, upload_id)
    if upload.concat is not None and upload.concat != PARTIAL:
        raise Forbidden("a final (concatenated) upload takes no more bytes")
    if upload.state != "receiving":
        raise Conflict("this upload is complete", offset=upload.byte_offset)
    # While another request holds the lock the offset may still move: it is compared once the
    # holder has let go (a 409 then carries the offset the holder saved).
    if offset != upload.byte_offset and not _locked(uploads, upload):
        raise Conflict(
            f"Upload-Offset {offset} is not the upload's offset {upload.byte_offset}",
            offset=upload.byte_offset,
        )
    if length is not None:
        upload = await _set_length(uploads, upload, length)
    holder = secrets.token_hex(8)
    await _take_lock(uploads, upload.id, holder, offset)
    try:
        # The length may have been set by the request that held the lock.
        locked = await uploads.db.run(queries.get_upload, upload.id)
        upload = locked if locked is not None else upload
        # A partial upload's own hash would be wasted: the final upload is hashed whole.
        file_hash = None if upload.concat == PARTIAL else await _hash_up_to(uploads, upload, offset)
        body_hash = hashlib.new(checksum.algorithm) if checksum is not None else None

        def on_written(pieces: list[Buffer]) -> None:
            for piece in pieces:
                if file_hash is not None:
                    file_hash.update(piece)
                if body_hash is not None:
                    body_hash.update(piece)

        size_left = upload.size if upload.size is not None else uploads.settings.max_size_bytes
        sink = await uploads.storage.open_chunk(upload.id, offset, on_written)
    except BaseException:
        await uploads.db.run(books.release_lock, upload.id, holder)
        raise
    write = Write(
        uploads=uploads,
        upload=upload,
        holder=holder,
        start=offset,
        limit=max(0, size_left - offset),
        sink=sink,
        on_written=on_written,
        file_hash=file_hash,
        checksum=checksum,
        body_hash=body_hash,
        check_stream=uploads.stream_guard(upload.owner, upload.id) if upload.size is None else None,
    )
    _writers[holder] = write
    write.keeper = asyncio.create_task(_keep_lock(uploads, write))
    return write


async def end_write(uploads: Uploads, write: Write, whole: bool) -> Outcome:
    """Count what was written: everything that arrived, even if cut off (`whole` False), except
    that a body with a checksum counts only whole and matching; it is discarded otherwise."""
    upload = write.upload
    try:
        written = await write.sink.finish()
        if write.checksum is not None:
            if not whole:
                return Outcome(upload)
            if write.body_hash.digest() != write.checksum.digest:
                raise ChecksumMismatch(f"the body does not match its {write.checksum.algorithm}")
        end = write.offset + written
        fresh = await uploads.db.run(queries.get_upload, upload.id)
        if fresh is None:
            raise NotFound("the upload was terminated while it was written")
        complete = fresh.size is not None and end == fresh.size and fresh.concat is None
        # No fdatasync here (a PATCH per 8 MiB chunk would wait for the disk each time): the
        # bytes are in the page cache, which a crash of this process does not lose, and
        # finalizing flushes the whole file. Only saves in the middle of a body flush first.
        await _record(uploads, write, end)
        if complete:
            return await _complete(uploads, fresh)
        recorded = await uploads.db.run(queries.get_upload, upload.id)
        return Outcome(recorded if recorded is not None else fresh)
    finally:
        await _unlock(uploads, write)


async def abort_write(uploads: Uploads, write: Write) -> None:
    """The request failed in a way that counts nothing of it (too long, storage error)."""
    try:
        await write.sink.abort()
    finally:
        await _unlock(uploads, write)


async def join(uploads: Uploads, owner: str, part_ids: list[str], new: NewUpload) -> Outcome:
    """A final upload made of complete partial uploads, in order; the parts are then removed."""
    if not part_ids:
        raise BadRequest("Upload-Concat: final needs at least one partial upload")
    parts = [await find(uploads, part_id) for part_id in part_ids]
    if len({part.id for part in parts}) != len(parts):
        # Each repetition would be new bytes that no admission saw (100 MiB sent, 97 GiB stored).
        raise BadRequest("Upload-Concat: a partial upload may appear only once in a final upload")
    now = uploads.clock()
    for part in parts:
        if part.concat != PARTIAL:
            raise BadRequest(f"upload {part.id} is not a partial upload")
        if part.state != "receiving" or part.size is None or part.byte_offset != part.size:
            raise BadRequest(f"partial upload {part.id} is not complete")
        if (part.lock_until or 0) > now:
            raise Locked(f"partial upload {part.id} is being written")
    total = sum(part.size or 0 for part in parts)
    check_size(uploads, total)
    upload = _new_upload(new, owner, total, now)
    # The parts were admitted when they were created (their owners' quotas count them), and they
    # are removed once joined; the owner's quota takes the final's bytes that were someone else's.
    # The disk needs the whole total until then: the parts stay while they are copied.
    theirs = sum(part.size or 0 for part in parts if part.owner != owner)
    async with uploads.admission:
        active_since = uploads.active_since()
        await guard.check_quotas(uploads.settings, uploads.db, owner, theirs, active_since)
        await guard.check_space(uploads.settings, uploads.db, uploads.storage, total, active_since)
        upload = await uploads.db.run(queries.insert_upload, upload)
    started = time.perf_counter()
    try:
        how = await uploads.storage.join_partials(
            upload.id, [(part.id, part.size or 0) for part in parts]
        )
    except FileNotFoundError:
        await _discard(uploads, upload)
        raise Conflict("a partial upload was removed during the concatenation") from None
    except BaseException:
        await _discard(uploads, upload)
        raise
    log.info(
        "joined %d partial uploads (%d bytes) by %s in %.3f s",
        len(parts), total, how, time.perf_counter() - started,
    )  # fmt: skip
    await uploads.db.run(books.set_joined, upload.id, total, uploads.clock())
    joined = await uploads.db.run(queries.get_upload, upload.id)
    assert joined is not None
    outcome = await _complete(uploads, joined)
    for part in {part.id: part for part in parts}.values():
        await _discard(uploads, part)
    return outcome


async def terminate(uploads: Uploads, upload_id: str) -> None:
    """Free an upload: an unfinished one loses its bytes; a finished one only its URL (the file
    it became is managed as a file)."""
    upload = await find(uploads, upload_id)
    if _locked(uploads, upload):
        upload = await _let_go(uploads, upload)
    if upload.state == "finalizing":
        raise Locked("the upload is being finished; try again")
    await _discard(uploads, upload)


async def stored_file(uploads: Uploads, upload: Upload) -> StoredFile | None:
    if upload.state != "done" or not upload.file_id:
        return None
    return await uploads.db.run(queries.get_file, upload.file_id)


async def settle(uploads: Uploads, upload: Upload) -> Outcome:
    """The upload as a client sees it. A complete one whose finish failed earlier (a full disk, a
    crash) is finished now: a client reading `Upload-Offset == Upload-Length` gets its file."""
    complete = upload.size is not None and upload.byte_offset == upload.size
    idle = (upload.lock_until or 0) < uploads.clock()
    if upload.state == "receiving" and complete and upload.concat is None and idle:
        return await _complete(uploads, upload)
    return Outcome(upload, await stored_file(uploads, upload))


# --- inside ------------------------------------------------------------------------------------


async def _complete(uploads: Uploads, upload: Upload) -> Outcome:
    await _trim(uploads, upload)
    await uploads.db.run(queries.record_chunk, upload.id, 0, uploads.clock())
    uploads.counters["chunks_counted"] += 1
    stored = await uploads.finalize(upload.id, upload.owner)
    done = await uploads.db.run(queries.get_upload, upload.id)
    return Outcome(done or upload, stored)


async def _trim(uploads: Uploads, upload: Upload) -> None:
    """Cut the partial file to the upload's size: a refused request (a checksum mismatch, a cut
    body that doesn't count) may have written past the offset, and those bytes must not be
    published with the file (its SHA-256 covers exactly the first `size` bytes)."""
    storage = uploads.storage
    if upload.size is None or not isinstance(storage, LocalStorage):
        return  # tus runs on local disk only (`check_available`)
    with contextlib.suppress(FileNotFoundError):
        if await storage.partial_size(upload.id) > upload.size:
            await storage.truncate_partial(upload.id, upload.size)


async def _save(uploads: Uploads, write: Write) -> None:
    """Make what a long write has written so far count, as if the request ended here: after a
    crash the offset holds the bytes that reached the disk (tusd does the same)."""
    written = await write.sink.finish()
    write.saved_at = time.monotonic()
    end = write.offset + written
    if written:
        if uploads.settings.fsync:
            await uploads.storage.flush_partial(write.upload.id)
        await _record(uploads, write, end)
    write.sink = await uploads.storage.open_chunk(write.upload.id, end, write.on_written)


async def _record(uploads: Uploads, write: Write, end: int) -> None:
    """Advance the upload's offset to `end` under the write's lock, and the process's hash."""
    upload_id = write.upload.id
    if not await uploads.db.run(
        books.advance_offset, upload_id, write.holder, write.offset, end, uploads.clock()
    ):
        raise Conflict("this upload changed while the request was written; ask its offset")
    progress = uploads.hash_progress(upload_id)
    if write.file_hash is not None and progress.position == write.offset:
        # A copy: the write's own hash goes on with the bytes still to come.
        progress.hasher, progress.position = write.file_hash.copy(), end
    write.saved = end - write.start


async def _discard(uploads: Uploads, upload: Upload) -> None:
    if upload.state != "done":
        await uploads.storage.discard_partial(upload.id)
    await uploads.db.run(queries.delete_upload, upload.id)
    uploads.forget_hash(upload.id)


async def _set_length(uploads: Uploads, upload: Upload, length: int) -> Upload:
    if upload.size is not None:
        if length != upload.size:
            raise BadRequest("Upload-Length can't change once set")
        return upload
    check_size(uploads, length)
    if length < upload.byte_offset:
        raise BadRequest("Upload-Length is less than the bytes already received")

    async def record_length() -> None:
        await uploads.db.run(books.set_length, upload.id, length)

    # Admitted now as a new upload of that size would be (the one admission): the quotas take its
    # whole length, the disk what its partial does not hold yet.
    await uploads.admit(upload.owner, length, upload.id, then=record_length)
    fresh = await uploads.db.run(queries.get_upload, upload.id)
    if fresh is None or fresh.size != length:
        raise Conflict("Upload-Length was set differently by another request")
    return fresh


async def _take_lock(uploads: Uploads, upload_id: str, holder: str, offset: int) -> None:
    """Become the upload's one writer. A request holding the lock is asked to let go; it saves
    what it wrote and releases, usually within a second. 423 only if it doesn't in time."""

    async def refused() -> Upload | None:
        if await uploads.db.run(
            books.take_lock, upload_id, holder, offset, uploads.clock(), LOCK_LEASE_SECONDS
        ):
            return None
        return await _explain_refused_lock(uploads, upload_id, offset)

    await _wait_until_let_go(uploads, refused)


async def _let_go(uploads: Uploads, upload: Upload) -> Upload:
    """Ask the request writing to the upload to stop, and wait until it has (DELETE)."""
    latest = upload

    async def still_held() -> Upload | None:
        nonlocal latest
        fresh = await uploads.db.run(queries.get_upload, upload.id)
        if fresh is None:
            raise NotFound("no such upload")
        latest = fresh
        return fresh if _locked(uploads, fresh) else None

    await _wait_until_let_go(uploads, still_held)
    return latest


async def _wait_until_let_go(
    uploads: Uploads, holder_of: Callable[[], Awaitable[Upload | None]]
) -> None:
    """Until `holder_of` answers None (the lock is free, or ours), ask whoever holds the lock it
    names to let go (once per holder) and wait; 423 if it doesn't in TAKEOVER_WAIT_SECONDS."""
    deadline = time.monotonic() + TAKEOVER_WAIT_SECONDS
    asked: str | None = None
    while (held := await holder_of()) is not None:
        if held.lock_owner != asked:
            asked = held.lock_owner
            await _ask_to_let_go(uploads, held)
        if time.monotonic() > deadline:
            raise Locked("another request is writing to this upload and did not let go in time")
        await asyncio.sleep(TAKEOVER_POLL_SECONDS)


async def _ask_to_let_go(uploads: Uploads, upload: Upload) -> None:
    await uploads.db.run(books.want_lock, upload.id, uploads.clock())
    local = _writers.get(upload.lock_owner or "")
    if local is not None:
        local.stop()  # in this process: at once, without waiting for its keeper


async def _explain_refused_lock(uploads: Uploads, upload_id: str, offset: int) -> Upload:
    """Why the lock was not taken: 404 or 409 here; else the upload (locked by another request,
    or just released)."""
    fresh = await uploads.db.run(queries.get_upload, upload_id)
    if fresh is None:
        raise NotFound("no such upload")
    if fresh.state != "receiving":
        raise Conflict("this upload is complete", offset=fresh.byte_offset)
    if fresh.byte_offset != offset and not _locked(uploads, fresh):
        raise Conflict(
            f"Upload-Offset {offset} is not the upload's offset {fresh.byte_offset}",
            offset=fresh.byte_offset,
        )
    return fresh


def _locked(uploads: Uploads, upload: Upload) -> bool:
    return upload.lock_owner is not None and (upload.lock_until or 0) >= uploads.clock()


async def _keep_lock(uploads: Uploads, write: Write) -> None:
    """Renew the write's lease, and stop the write when another request (in any process) asks
    for the lock, when the lock was lost, or when the lease is about to lapse unrenewed."""
    held_until = uploads.clock() + LOCK_LEASE_SECONDS
    while True:
        await asyncio.sleep(KEEP_SECONDS)
        now = uploads.clock()
        try:
            renewed = await uploads.db.run(
                books.renew_lock, write.upload.id, write.holder, now + LOCK_LEASE_SECONDS, now
            )
        except Exception:
            log.warning("could not renew the lock of upload %s", write.upload.id, exc_info=True)
            # The lease still holds until `held_until`: one slow or failed database call must not
            # cut a healthy upload short. Stop while two renewals' time is left, before the lease
            # lets another request in.
            renewed = uploads.clock() + 2 * KEEP_SECONDS < held_until
        else:
            if renewed:
                held_until = now + LOCK_LEASE_SECONDS
        if not renewed:
            write.stop()


async def _unlock(uploads: Uploads, write: Write) -> None:
    _writers.pop(write.holder, None)
    if write.keeper is not None:
        write.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await write.keeper
    await uploads.db.run(books.release_lock, write.upload.id, write.holder)


async def _hash_up_to(uploads: Uploads, upload: Upload, offset: int) -> Any:
    """A copy of the upload's SHA-256 advanced to `offset`, reading back only what this process
    has not hashed yet (after a restart, or when another process took the earlier writes)."""
    progress = uploads.hash_progress(upload.id)
    async with progress.lock:
        if progress.position > offset:
            progress.hasher, progress.position = hashlib.sha256(), 0
        if progress.position < offset:
            await uploads.storage.hash_partial(
                upload.id, progress.hasher, progress.position, offset
            )
            progress.position = offset
        return progress.hasher.copy()


def _new_upload(new: NewUpload, owner: str, size: int | None, now: float) -> Upload:
    """The row of a new offset upload: one chunk as large as the file, its size maybe unknown."""
    return Upload(
        id=str(uuid.uuid4()),
        owner=owner,
        name=sanitize(new.filename),
        size=size,
        chunk_size=max(size or 0, 1),
        chunk_count=1,
        protocol=PROTOCOL,
        state="receiving",
        created=now,
        updated=now,
        metadata=new.metadata,
        content_type=new.content_type,
        concat=new.concat,
        address=limits.client_address.get(),
    )
