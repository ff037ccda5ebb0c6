"""tus's uploads in the core: what is tus's own, around the core's one write path.

An offset upload is an upload row with protocol "tus", one chunk as large as the file, and
`byte_offset`, the bytes stored so far. The core (`Uploads.begin_at_offset`, `complete_chunk`)
admits, writes, hashes, saves and counts its bytes and finalizes it as any upload; this module
keeps what is tus's: the rule that an upload addressed by offset has one writer (a short lease in
its row, renewed, taken over at once), Upload-Offset and deferred lengths, checksums that vouch for
a whole body, expiry, termination, and which uploads a concatenation may join.

A request that finds the lock held asks the holder to let go (a flag in the row, and in this
process directly): the holder stops reading, counts what it wrote and releases, so a client whose
connection died, or a retry that came on a new connection, takes over at once (as in tusd 2.x).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pyfiledrop.errors import (
    ChecksumMismatch,
    Conflicting,
    Interrupted,
    Invalid,
    NotPermitted,
    OffsetMismatch,
    ProtocolUnavailable,
    UploadBusy,
    UploadExpired,
    UploadNotFound,
)
from pyfiledrop.meta import TUS_OFFSETS, StoredFile, Upload, queries, tus_queries
from pyfiledrop.protocols.body import ChunkFeeder
from pyfiledrop.saving import SavingSink
from pyfiledrop.uploads import ChunkPlan, Uploads

log = logging.getLogger("pyfiledrop")

PROTOCOL = TUS_OFFSETS
PARTIAL = "partial"
# The lease is short so that the lock of a process that died (one of several) frees itself soon;
# the holder renews it, and looks whether another request asked for the lock, every KEEP_SECONDS.
LOCK_LEASE_SECONDS = 5.0
KEEP_SECONDS = 0.5
TAKEOVER_WAIT_SECONDS = 3.0  # how long a request waits for a holder it asked to let go
TAKEOVER_POLL_SECONDS = 0.05
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
# A write hashed beside its writes answers before its last bytes are hashed (hash_lane.py), at
# the cost of up to ~2 MiB more held while the hash lags; with more writes at once than this in
# the process, they are hashed as the store writes them (as before), memory stays as it was.
HASH_BESIDE_WRITES = 4


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
    """One request's bytes on their way to the upload (the core's plan), under its lock."""

    plan: ChunkPlan
    holder: str
    keeper: asyncio.Task[None] | None = None
    stopping: bool = False  # another request asked for the lock
    reader: asyncio.Task[Any] | None = None  # the request, while it reads the body
    feeding: bool = False  # the request is writing a piece (never cut there)
    cut: bool = False

    def stop(self) -> None:
        """Let go soon: a request waiting for its client stops at once."""
        self.stopping = True
        if self.reader is not None and not self.feeding and not self.cut:
            self.cut = True
            self.reader.cancel()


# This process's writes in progress, by lock holder: a request asks one of them to stop directly.
_writers: dict[str, Write] = {}


def check_available(uploads: Uploads) -> None:
    """Offset uploads write pieces of any size at any offset: a store with a minimum part size
    (S3) can't take them, so tus is refused outright there rather than failing per PATCH."""
    if not uploads.storage.parts.any_offset:
        raise ProtocolUnavailable(
            "tus is not available on this server (its files go to S3): use Dropzone chunks or PUT"
        )


def expires(uploads: Uploads, upload: Upload) -> float | None:
    """When the janitor may remove this unfinished upload (the core's `abandon_after`)."""
    if upload.state == "done":
        return None
    return upload.updated + uploads.settings.abandon_after


async def release_dead_locks(uploads: Uploads) -> int:
    """At the start of the only server process: write locks left by a crash belong to no one, and
    a client retrying at once must not be refused while they run out."""
    released = await uploads.db.run(tus_queries.release_all_locks)
    if released:
        log.warning("released %d tus lock(s) left by a previous run", released)
    return released


async def create(uploads: Uploads, new: NewUpload) -> Upload:
    upload = await uploads.open_upload(_new_upload(uploads, new, new.owner, new.size))
    if new.size == 0 and new.concat is None:
        return await _complete(uploads, upload)
    return upload


async def find(uploads: Uploads, upload_id: str) -> Upload:
    """The upload behind a URL; 404 if unknown, 410 (and removed) once it has expired."""
    try:
        upload_id = str(uuid.UUID(upload_id))
    except ValueError:
        raise UploadNotFound("no such upload") from None
    upload = await uploads.db.run(queries.get_upload, upload_id)
    if upload is None or upload.protocol != PROTOCOL:
        raise UploadNotFound("no such upload")
    now = uploads.clock()
    deadline = expires(uploads, upload)
    if (
        deadline is not None
        and deadline < now
        and upload.state == "receiving"
        and (upload.lock_until or 0) < now
    ):
        await uploads.discard(upload)
        raise UploadExpired("this upload expired and was removed; start a new one")
    return upload


async def begin_write(
    uploads: Uploads,
    upload_id: str,
    offset: int,
    length: int | None,
    checksum: Checksum | None,
) -> Write:
    holder = secrets.token_hex(8)
    # Usually the upload is free at `offset`: one statement takes it. Else, or with a length to
    # set, each rule in turn says why not (404, 410, 403, 409), or the holder is asked to let go.
    upload = (
        None if length is not None else await _take_free_lock(uploads, upload_id, holder, offset)
    )
    if upload is None:
        upload = await find(uploads, upload_id)
        if upload.concat is not None and upload.concat != PARTIAL:
            raise NotPermitted("a final (concatenated) upload takes no more bytes")
        _check_offset(uploads, upload, offset)
        if length is not None:
            upload = await _set_length(uploads, upload, length)
        # As the lock was taken: the length may have been set by the request that held it.
        upload = await _take_lock(uploads, upload.id, holder, offset)
    try:
        body_hash = hashlib.new(checksum.algorithm) if checksum is not None else None
        plan = await uploads.begin_in_order(
            upload,
            offset,
            holder=holder,
            also=body_hash,
            # A body with a checksum counts only whole, so it has nothing to save on the way.
            save=checksum is None,
            # A partial upload's own hash would be wasted: the final upload is hashed whole.
            hashed=upload.concat != PARTIAL,
            # A checksum is checked before the write counts: its hash can't be left behind.
            beside=checksum is None and len(_writers) < HASH_BESIDE_WRITES,
        )
    except BaseException:
        await uploads.db.run(tus_queries.release_lock, upload.id, holder)
        raise
    if checksum is not None:
        plan.verify = lambda: _verify(checksum, body_hash)
    write = Write(plan, holder)
    _writers[holder] = write
    write.keeper = asyncio.create_task(_keep_lock(uploads, write))
    return write


def _verify(checksum: Checksum, body_hash: Any) -> None:
    if body_hash.digest() != checksum.digest:
        raise ChecksumMismatch(f"the body does not match its {checksum.algorithm}")


async def receive(
    write: Write, feeder: ChunkFeeder, pieces: AsyncIterator[bytes | bytearray]
) -> None:
    """Feed the body to the core; stop (Interrupted) when another request asks for the lock:
    at once while the client is awaited (once what already arrived is written), else after the
    piece being written."""
    if write.stopping:
        raise Interrupted("another request for this upload took over")
    write.reader = asyncio.current_task()
    try:
        async for piece in pieces:
            write.feeding = True  # (left set if it raises: the request reads no more)
            await feeder.feed(memoryview(piece))
            write.feeding = False
            # Once cut, the body raises the cut after handing over what arrived
            # (body_takeover.py): write that too.
            if write.stopping and not write.cut:
                raise Interrupted("another request for this upload took over")
    except asyncio.CancelledError:
        if not write.cut or write.reader is None:
            raise
        write.reader.uncancel()
        raise Interrupted("another request for this upload took over") from None
    finally:
        write.reader = None


async def end_write(
    uploads: Uploads, write: Write, feeder: ChunkFeeder, whole: bool = True, failed: bool = False
) -> Upload:
    """Count what was written: everything that arrived, even if cut off (`whole` False), except
    that a body with a checksum counts only whole and matching, and nothing of a request that
    `failed` (too long, storage error)."""
    counted: Upload | None = None
    try:
        if failed or (write.plan.verify is not None and not whole):
            await feeder.abort(uploads)
        else:
            counted = (await feeder.finish(uploads)).upload
    finally:
        # A write that left the upload unfinished let go of the lock as it counted.
        released = counted is not None and counted.lock_owner != write.holder
        await _unlock(uploads, write, released)
    return counted if released and counted is not None else await _fresh(uploads, write.plan.upload)


async def join(uploads: Uploads, owner: str, part_ids: list[str], new: NewUpload) -> Upload:
    """A final upload made of complete partial uploads, in order; the parts are then removed."""
    if not part_ids:
        raise Invalid("{field}: final needs at least one partial upload", field="concat")
    parts = [await find(uploads, part_id) for part_id in part_ids]
    if len({part.id for part in parts}) != len(parts):
        # Each repetition would be new bytes that no admission saw (100 MiB sent, 97 GiB stored).
        raise Invalid(
            "{field}: a partial upload may appear only once in a final upload", field="concat"
        )
    now = uploads.clock()
    for part in parts:
        if part.concat != PARTIAL:
            raise Invalid(f"upload {part.id} is not a partial upload")
        if part.state != "receiving" or part.size is None or part.byte_offset != part.size:
            raise Invalid(f"partial upload {part.id} is not complete")
        if (part.lock_until or 0) > now:
            raise UploadBusy(f"partial upload {part.id} is being written")
    upload = _new_upload(uploads, new, owner, sum(part.size or 0 for part in parts))
    await uploads.concatenate(upload, parts)
    return await _fresh(uploads, upload)


async def terminate(uploads: Uploads, upload_id: str) -> None:
    """Free an upload: an unfinished one loses its bytes; a finished one only its URL (the file
    it became is managed as a file)."""
    upload = await find(uploads, upload_id)
    if _locked(uploads, upload):
        upload = await _let_go(uploads, upload)
    if upload.state == "finalizing":
        raise UploadBusy("the upload is being finished; try again")
    await uploads.discard(upload)


async def stored_file(uploads: Uploads, upload: Upload) -> StoredFile | None:
    if upload.state != "done" or not upload.file_id:
        return None
    return await uploads.db.run(queries.get_file, upload.file_id)


async def settle(uploads: Uploads, upload: Upload) -> Upload:
    """The upload as a client sees it. A complete one whose finish failed earlier (a full disk, a
    crash) is finished now: a client reading `Upload-Offset == Upload-Length` gets its file."""
    complete = upload.size is not None and upload.byte_offset == upload.size
    idle = (upload.lock_until or 0) < uploads.clock()
    if upload.state == "receiving" and complete and upload.concat is None and idle:
        return await _complete(uploads, upload)
    return upload


# --- inside ------------------------------------------------------------------------------------


async def _complete(uploads: Uploads, upload: Upload) -> Upload:
    await uploads.complete_upload(upload)
    return await _fresh(uploads, upload)


async def _fresh(uploads: Uploads, upload: Upload) -> Upload:
    fresh = await uploads.db.run(queries.get_upload, upload.id)
    return fresh if fresh is not None else upload


async def _set_length(uploads: Uploads, upload: Upload, length: int) -> Upload:
    if upload.size is not None:
        if length != upload.size:
            raise Invalid("{field} can't change once set", field="length")
        return upload
    if length < upload.byte_offset:
        raise Invalid("{field} is less than the bytes already received", field="length")

    async def record_length() -> None:
        await uploads.db.run(tus_queries.set_length, upload.id, length)

    # Admitted now as a new upload of that size would be (the one admission): the quotas take its
    # whole length, the disk what its partial does not hold yet.
    await uploads.admit(upload.owner, length, upload.id, then=record_length)
    fresh = await uploads.db.run(queries.get_upload, upload.id)
    if fresh is None or fresh.size != length:
        raise Conflicting("{field} was set differently by another request", field="length")
    return fresh


async def _take_free_lock(
    uploads: Uploads, upload_id: str, holder: str, offset: int
) -> Upload | None:
    try:
        upload_id = str(uuid.UUID(upload_id))
    except ValueError:
        return None
    return await uploads.db.run(
        tus_queries.take_free_lock,
        *(upload_id, holder, offset, uploads.clock(), LOCK_LEASE_SECONDS),
        uploads.settings.abandon_after,
    )


async def _take_lock(uploads: Uploads, upload_id: str, holder: str, offset: int) -> Upload:
    """Become the upload's one writer; the upload as it was then. A request holding the lock is
    asked to let go; it saves what it wrote and releases, usually within a second. 423 only if
    it doesn't in time."""
    taken: Upload | None = None

    async def refused() -> Upload | None:
        nonlocal taken
        taken = await uploads.db.run(
            tus_queries.take_lock, upload_id, holder, offset, uploads.clock(), LOCK_LEASE_SECONDS
        )
        if taken is not None:
            return None
        return await _explain_refused_lock(uploads, upload_id, offset)

    await _wait_until_let_go(uploads, refused)
    assert taken is not None
    return taken


async def _let_go(uploads: Uploads, upload: Upload) -> Upload:
    """Ask the request writing to the upload to stop, and wait until it has (DELETE)."""
    latest = upload

    async def still_held() -> Upload | None:
        nonlocal latest
        fresh = await uploads.db.run(queries.get_upload, upload.id)
        if fresh is None:
            raise UploadNotFound("no such upload")
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
            raise UploadBusy("another request is writing to this upload and did not let go in time")
        await asyncio.sleep(TAKEOVER_POLL_SECONDS)


async def _ask_to_let_go(uploads: Uploads, upload: Upload) -> None:
    await uploads.db.run(tus_queries.want_lock, upload.id, uploads.clock())
    local = _writers.get(upload.lock_owner or "")
    if local is not None:
        local.stop()  # in this process: at once, without waiting for its keeper


async def _explain_refused_lock(uploads: Uploads, upload_id: str, offset: int) -> Upload:
    """Why the lock was not taken: 404 or 409 here; else the upload (locked by another request,
    or just released)."""
    fresh = await uploads.db.run(queries.get_upload, upload_id)
    if fresh is None:
        raise UploadNotFound("no such upload")
    _check_offset(uploads, fresh, offset)
    return fresh


def _check_offset(uploads: Uploads, upload: Upload, offset: int) -> None:
    """409 unless the upload takes bytes at `offset`. While another request holds the lock the
    offset may still move: it is compared once the holder has let go (the 409 then carries the
    offset the holder saved)."""
    if upload.state != "receiving":
        raise OffsetMismatch("this upload is complete", offset=upload.byte_offset)
    if offset != upload.byte_offset and not _locked(uploads, upload):
        raise OffsetMismatch(
            f"{{field}} {offset} is not the upload's offset {upload.byte_offset}",
            field="offset",
            offset=upload.byte_offset,
        )


def _locked(uploads: Uploads, upload: Upload) -> bool:
    return upload.lock_owner is not None and (upload.lock_until or 0) >= uploads.clock()


async def _keep_lock(uploads: Uploads, write: Write) -> None:
    """Renew the write's lease, and stop the write when another request (in any process) asks
    for the lock, when the lock was lost, or when the lease is about to lapse unrenewed. While
    the body is silent, what it brought is saved here (a client that vanished keeps it)."""
    held_until = uploads.clock() + LOCK_LEASE_SECONDS
    while True:
        await asyncio.sleep(KEEP_SECONDS)
        now = uploads.clock()
        upload_id = write.plan.upload.id
        try:
            renewed = await uploads.db.run(
                tus_queries.renew_lock, upload_id, write.holder, now + LOCK_LEASE_SECONDS, now
            )
        except Exception:
            log.warning("could not renew the lock of upload %s", upload_id, exc_info=True)
            # The lease still holds until `held_until`: one slow or failed database call must not
            # cut a healthy upload short. Stop while two renewals' time is left, before the lease
            # lets another request in.
            renewed = uploads.clock() + 2 * KEEP_SECONDS < held_until
        else:
            if renewed:
                held_until = now + LOCK_LEASE_SECONDS
        if not renewed:
            write.stop()
        if isinstance(write.plan.sink, SavingSink):
            try:
                # Shielded: a save cut half-way would leave the sink half finished.
                await asyncio.shield(write.plan.sink.save_if_due())
            except Exception:
                # Kept by the sink: the request's next write (or its end) raises it.
                log.warning("could not save upload %s", upload_id, exc_info=True)


async def _unlock(uploads: Uploads, write: Write, released: bool = False) -> None:
    """The write is over: stop keeping its lock, and let go of it (`released`: it did already)."""
    _writers.pop(write.holder, None)
    if write.keeper is not None:
        write.keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await write.keeper
    if not released:
        await uploads.db.run(tus_queries.release_lock, write.plan.upload.id, write.holder)


def _new_upload(uploads: Uploads, new: NewUpload, owner: str, size: int | None) -> Upload:
    return uploads.one_chunk_upload(
        owner,
        new.filename,
        size,
        PROTOCOL,
        metadata=new.metadata,
        content_type=new.content_type,
        concat=new.concat,
    )
