"""Uploads received in order at a byte offset (tus): create, write, join, terminate.

The protocol module translates tus's headers into these calls; this module decides, in the same
books as every other upload. An offset upload is an upload row with protocol "tus", one chunk as
large as the file, and `byte_offset`, the bytes stored so far. A write takes the upload's lock (a
lease in its row), streams to the partial file at the offset, hashes the bytes on the I/O thread as
they are written, and then advances the offset by what was written: all of it, even when the
request was cut off, unless a checksum must vouch for the bytes first. When the offset reaches the
size, the core counts the one chunk and finalizes as for any upload (SHA-256, dedup, publish once).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
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
from pyfiledrop.storage import Buffer, ChunkSink
from pyfiledrop.uploads import Uploads

log = logging.getLogger("pyfiledrop")

PROTOCOL = "tus"
PARTIAL = "partial"
LOCK_LEASE_SECONDS = 30.0
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


@dataclass
class Write:
    """One request's bytes on their way to the upload, under its lock."""

    upload: Upload
    holder: str
    start: int
    limit: int  # the most bytes this request may bring
    sink: ChunkSink
    file_hash: Any  # SHA-256 of the file so far, advanced on the I/O thread; None for a part
    checksum: Checksum | None
    body_hash: Any
    keeper: asyncio.Task[None]
    received: int = 0

    async def feed(self, piece: Buffer) -> None:
        self.received += len(piece)
        if self.received > self.limit:
            raise PayloadTooLarge("the body goes past the upload's length (or the size limit)")
        await self.sink.write(piece)


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


async def create(uploads: Uploads, new: NewUpload) -> Outcome:
    if new.size is not None:
        check_size(uploads, new.size)
    now = uploads.clock()
    upload = _new_upload(new, new.owner, new.size, now)
    async with uploads.admission:  # the disk guard and quotas, as for every new upload
        await guard.admit(uploads.settings, uploads.db, uploads.storage, new.owner, new.size)
        await uploads.storage.create_partial(upload.id, new.size)
        upload = await uploads.db.run(queries.insert_upload, upload)
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
    if offset != upload.byte_offset:
        raise Conflict(
            f"Upload-Offset {offset} is not the upload's offset {upload.byte_offset}",
            offset=upload.byte_offset,
        )
    if length is not None:
        upload = await _set_length(uploads, upload, length)
    holder = secrets.token_hex(8)
    if not await uploads.db.run(
        books.take_lock, upload.id, holder, offset, uploads.clock(), LOCK_LEASE_SECONDS
    ):
        await _explain_refused_lock(uploads, upload.id, offset)
    keeper = asyncio.create_task(_keep_lock(uploads, upload.id, holder))
    try:
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
        await _unlock(uploads, upload.id, holder, keeper)
        raise
    return Write(
        upload=upload,
        holder=holder,
        start=offset,
        limit=max(0, size_left - offset),
        sink=sink,
        file_hash=file_hash,
        checksum=checksum,
        body_hash=body_hash,
        keeper=keeper,
    )


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
        end = write.start + written
        if not await uploads.db.run(
            books.advance_offset, upload.id, write.holder, write.start, end, uploads.clock()
        ):
            raise Conflict("this upload changed while the request was written; ask its offset")
        progress = uploads.hash_progress(upload.id)
        if write.file_hash is not None and progress.position == write.start:
            progress.hasher, progress.position = write.file_hash, end
        fresh = await uploads.db.run(queries.get_upload, upload.id)
        if fresh is None:
            raise NotFound("the upload was terminated while it was written")
        if fresh.size is not None and end == fresh.size and fresh.concat is None:
            return await _complete(uploads, fresh)
        return Outcome(fresh)
    finally:
        await _unlock(uploads, upload.id, write.holder, write.keeper)


async def abort_write(uploads: Uploads, write: Write) -> None:
    """The request failed in a way that counts nothing of it (too long, storage error)."""
    try:
        await write.sink.abort()
    finally:
        await _unlock(uploads, write.upload.id, write.holder, write.keeper)


async def join(uploads: Uploads, owner: str, part_ids: list[str], new: NewUpload) -> Outcome:
    """A final upload made of complete partial uploads, in order; the parts are then removed."""
    if not part_ids:
        raise BadRequest("Upload-Concat: final needs at least one partial upload")
    parts = [await find(uploads, part_id) for part_id in part_ids]
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
    if upload.state == "finalizing" or (upload.lock_until or 0) > uploads.clock():
        raise Locked("the upload is being written or finished; try again")
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
    await uploads.db.run(queries.record_chunk, upload.id, 0, uploads.clock())
    uploads.counters["chunks_counted"] += 1
    stored = await uploads.finalize(upload.id, upload.owner)
    done = await uploads.db.run(queries.get_upload, upload.id)
    return Outcome(done or upload, stored)


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
    await uploads.db.run(books.set_length, upload.id, length)
    fresh = await uploads.db.run(queries.get_upload, upload.id)
    if fresh is None or fresh.size != length:
        raise Conflict("Upload-Length was set differently by another request")
    return fresh


async def _explain_refused_lock(uploads: Uploads, upload_id: str, offset: int) -> None:
    fresh = await uploads.db.run(queries.get_upload, upload_id)
    if fresh is None:
        raise NotFound("no such upload")
    if fresh.state != "receiving":
        raise Conflict("this upload is complete", offset=fresh.byte_offset)
    if fresh.byte_offset != offset:
        raise Conflict(
            f"Upload-Offset {offset} is not the upload's offset {fresh.byte_offset}",
            offset=fresh.byte_offset,
        )
    raise Locked("another request is writing to this upload")


async def _keep_lock(uploads: Uploads, upload_id: str, holder: str) -> None:
    while True:
        await asyncio.sleep(LOCK_LEASE_SECONDS / 3)
        now = uploads.clock()
        await uploads.db.run(books.renew_lock, upload_id, holder, now + LOCK_LEASE_SECONDS, now)


async def _unlock(
    uploads: Uploads, upload_id: str, holder: str, keeper: asyncio.Task[None]
) -> None:
    keeper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await keeper
    await uploads.db.run(books.release_lock, upload_id, holder)


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
