"""The upload core: sessions, chunk bookkeeping, finalize-once, hashing, deduplication.

Protocol handlers translate HTTP into calls here; this module decides and keeps the books
(`meta`), and leaves the bytes to a `storage`. A chunk counts only after all its bytes are written
and its length checked; recording is idempotent, so retries are harmless; the finished file is
hashed, flushed and published exactly once, guarded in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyfiledrop import guard, lifecycle, limits
from pyfiledrop.config import Settings
from pyfiledrop.errors import (
    ChunkBusy,
    ChunksMissing,
    Conflicting,
    FileGone,
    FileNotFound,
    Invalid,
    NotSupportedByStorage,
    OffsetMismatch,
    Unavailable,
    UploadDiscarded,
    UploadNotFound,
)
from pyfiledrop.hash_lane import HashLane, LaneSink
from pyfiledrop.logs import ref
from pyfiledrop.meta import (
    DROPZONE_CHUNKS,
    ONE_SHOT_BODY,
    TUS_OFFSETS,
    Database,
    StoredFile,
    Upload,
    queries,
    tus_queries,
)
from pyfiledrop.metrics import Metrics
from pyfiledrop.names import sanitize
from pyfiledrop.saving import SavingSink
from pyfiledrop.storage import (
    Buffer,
    ChunkSink,
    Kind,
    OnWritten,
    PartialFiles,
    Shape,
    Storage,
    capabilities,
)

log = logging.getLogger("pyfiledrop")

MAX_CHUNK_SIZE = 4 * 1024**3
FINALIZE_LEASE_SECONDS = 60.0
# A chunk's writer holds a lease on it in the database. One task per process renews the leases
# of all its writers every CHUNK_LEASE_RENEW_SECONDS, so a killed process's leases run out within
# CHUNK_LEASE_SECONDS, and a retry (which waits up to BUSY_WAIT_SECONDS) takes over.
CHUNK_LEASE_SECONDS = 15.0
CHUNK_LEASE_RENEW_SECONDS = 3.0
BUSY_WAIT_SECONDS = 20.0  # how long a duplicate waits for the copy being written
ACTIVE_TOUCH_SECONDS = 20.0  # a stream marks its upload active this often (see guard.py)
FINALIZE_WAIT_SECONDS = 600.0
FINALIZE_POLL_SECONDS = 0.05
PUBLIC_ID_BYTES = 18  # 144 random bits, 24 url-safe characters
JANITOR_INTERVAL_SECONDS = 600.0

Clock = Callable[[], float]
T = TypeVar("T")

# The owner of a chunked upload begun without a cookie, until a request with one claims it: no
# owner id is empty (they are SHA-256 hex), so nobody lists or deletes by this one.
NO_OWNER = ""


@dataclass(frozen=True)
class ChunkClaim:
    """What a client says a chunk is (Dropzone's dz* fields, already parsed as integers)."""

    upload_id: str
    index: int
    count: int
    total_size: int
    chunk_size: int
    offset: int
    filename: str | None
    options: lifecycle.FileOptions = lifecycle.NO_OPTIONS

    @property
    def length(self) -> int:
        return max(0, min(self.chunk_size, self.total_size - self.offset))


@dataclass
class ChunkPlan:
    upload: Upload
    index: int
    offset: int
    length: int | None  # None: unknown until the stream ends (one-shot uploads)
    sink: ChunkSink | None  # None: a duplicate; read and discard
    limit: int  # the most bytes that may arrive
    check_stream: guard.StreamGuard | None = (
        None  # space and quotas, as a body of unknown size comes
    )
    writer: str | None = None  # this request's lease on the chunk (None: a stream, or no sink)
    busy: bool = False  # another request holds the chunk: drop the body, answer "busy" or done
    inline_hash: HashProgress | None = None  # the file's hash continued over this chunk's bytes
    keep_lease: asyncio.Task[None] | None = None  # a stream's: keeps its upload active
    lease_done: bool = False  # this writer no longer counts for the process's lease keeper
    # Bytes received in order at an offset (tus): the holder of the upload's write lock, whose
    # progress is recorded in `byte_offset`; `saved` of the bytes written already count.
    holder: str | None = None
    saved: int = 0
    verify: Callable[[], None] | None = None  # raises when the body must not count (checksum)
    hash_lane: HashLane | None = None  # hashes `inline_hash` beside the writes (tus)


@dataclass(frozen=True)
class ChunkOutcome:
    """What counting a chunk (or an offset write) came to; the protocol words it."""

    status: str  # "duplicate", "received" or "done"
    total: int | None = None  # the upload's chunk count
    received_count: int | None = None  # chunks counted so far
    offset: int | None = None  # bytes counted so far (writes at an offset)
    file: StoredFile | None = None  # the published file, once "done"
    upload: Upload | None = None  # the upload's row as counting left it (writes at an offset)


@dataclass(frozen=True)
class UploadState:
    """An upload as its uploader may see it: the chunks counted, the file once published."""

    upload: Upload
    received: list[int]
    file: StoredFile | None = None


@dataclass
class HashProgress:
    hasher: Any = field(default_factory=hashlib.sha256)
    position: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    received: set[int] = field(default_factory=set)
    pending: asyncio.Task[None] | None = None  # a write's hash on its way in (_adopt_when_hashed)
    # The lane that hashes the upload's tus writes (hash_lane.py), kept from one write to the
    # next; `lane_end`: where the bytes it took and that counted end (it is continued there).
    lane: HashLane | None = None
    lane_end: int = 0

    def feed(self, pieces: list[Buffer]) -> None:
        """Hash bytes as they are written (in order), on the storage's I/O thread."""
        for piece in pieces:
            self.hasher.update(piece)


def _written_hook(inline: HashProgress | None, also: Any) -> OnWritten | None:
    """What a sink calls with each batch it wrote: the inline hash and `also` go through it."""
    if inline is None and also is None:
        return None

    def on_written(pieces: list[Buffer]) -> None:
        if inline is not None:
            inline.feed(pieces)
        if also is not None:
            for piece in pieces:
                also.update(piece)

    return on_written


def log_upload_start(upload_id: str, protocol: str, size: int | None, chunks: int) -> None:
    """One line when an upload is admitted, so a long upload is visible before it is stored."""
    total = "unknown size" if size is None else f"{size} bytes"
    log.info("upload %s started (%s, %s, %d chunk(s))", upload_id, protocol, total, chunks)


# How each protocol's bytes arrive, as a store sees them (`storage.Kind`).
_KINDS: dict[str, Kind] = {
    DROPZONE_CHUNKS: "parts",
    ONE_SHOT_BODY: "one_shot",
    TUS_OFFSETS: "offsets",
}


def shape_of(upload: Upload) -> Shape:
    """What a store is told of an upload (it never reads the books)."""
    return Shape(upload.id, upload.name, upload.size, upload.chunk_size, _KINDS[upload.protocol])


def new_public_id() -> str:
    """Random, URL-safe, and never starting with "-": an operator pastes ids into
    `pyfiledrop files rm ID`, where a leading dash reads as an option (1 id in 64 did)."""
    return public_token(PUBLIC_ID_BYTES)


def public_token(size: int) -> str:
    while True:
        token = secrets.token_urlsafe(size)
        if not token.startswith("-"):
            return token


class Uploads:
    """The core's state for one server process: the books, the storage, and hashing progress."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage,
        clock: Clock = time.time,
    ) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage
        self.caps = capabilities(storage)  # asked here once; the core, guard and web ask `caps`
        self.clock = clock
        self.counters: Counter[str] = Counter(
            dict.fromkeys(
                ("chunk_requests", "chunks_counted", "duplicate_chunks", "files_published"), 0
            )
        )
        self._hashing: dict[str, HashProgress] = {}
        self._hash_tasks: dict[str, asyncio.Task[None]] = {}
        self._key: bytes | None = None
        self.metrics = Metrics(counting=settings.metrics)
        # Chunk leases are named after this process, so one task renews them all.
        self.process_token = secrets.token_hex(8)
        self._writers = 0
        self._lease_keeper: asyncio.Task[None] | None = None
        # New uploads are admitted one at a time, so two can't both take the last free space.
        self.admission = asyncio.Lock()

    # --- receiving -------------------------------------------------------------------------

    async def begin_chunk(self, owner: str, claim: ChunkClaim) -> ChunkPlan:
        """A sink for the chunk if this request becomes its one writer; else a plan that drops
        the body (counted already: a duplicate; being written by another request: busy).

        The protocol checked the claim's fields against each other and the limits."""
        self.counters["chunk_requests"] += 1
        now = self.clock()
        writer = f"{self.process_token}:{secrets.token_hex(6)}"
        # The plain case (an active upload, this chunk free) is settled in one database trip.
        upload, duplicate, claimed = await self.db.run(
            queries.start_chunk,
            claim.upload_id,
            claim.index,
            (claim.total_size, claim.chunk_size, claim.count),
            owner,
            writer,
            now,
            CHUNK_LEASE_SECONDS,
            self.active_since(),
        )
        if upload is None:
            upload = await self._admit_chunked(owner, claim, now)
        self._check_same_upload(upload, claim)
        upload = await self._claim_owner(upload, owner)
        if duplicate or upload.state != "receiving":
            self.counters["duplicate_chunks"] += 1
            return ChunkPlan(upload, claim.index, claim.offset, claim.length, None, claim.length)
        if not claimed and upload.updated < self.active_since():
            await self._readmit(upload)
        if not claimed and not await self._claim_writer(upload, claim.index, writer):
            # Counted meanwhile, or another request (any process) is still writing it: never two
            # writers of one byte range, so this body is read and dropped.
            return ChunkPlan(
                upload, claim.index, claim.offset, claim.length, None, claim.length, busy=True
            )
        try:
            inline = None
            if self.caps.partial_files is not None:
                inline = await self._start_inline_hash(upload.id, claim.offset)
            sink = await self._open_sink(
                upload, claim.offset, inline.feed if inline else None, claim.length
            )
        except BaseException:
            await self.db.run(queries.release_chunk_writer, upload.id, claim.index, writer)
            raise
        plan = ChunkPlan(
            upload, claim.index, claim.offset, claim.length, sink, claim.length, writer=writer
        )
        plan.inline_hash = inline
        self._writers += 1
        if self._lease_keeper is None or self._lease_keeper.done():
            self._lease_keeper = asyncio.create_task(self._keep_chunk_leases())
        return plan

    async def _start_inline_hash(
        self, upload_id: str, offset: int, catch_up: bool = False
    ) -> HashProgress | None:
        """Bytes that start where the file's hash stands are hashed as they are written (on the
        I/O thread), on a copy of the hasher, adopted only when they count (`_adopt_inline_hash`).
        `catch_up`: bytes that arrive in order read back what this process has not hashed yet
        (after a restart, or when another process took the earlier writes)."""
        await self.hash_settled(upload_id)
        progress = self.hash_progress(upload_id)
        if catch_up and (files := self.caps.partial_files) is not None:
            async with progress.lock:
                if progress.position > offset:
                    progress.hasher, progress.position = hashlib.sha256(), 0
                if progress.position < offset:
                    await files.hash_partial(upload_id, progress.hasher, progress.position, offset)
                    progress.position = offset
        if progress.position != offset or progress.lock.locked():
            return None  # not its turn, or the hash is being read back right now
        return HashProgress(hasher=progress.hasher.copy(), position=offset)

    async def _keep_chunk_leases(self) -> None:
        """While this process writes chunks: renew all their leases (and keep their uploads
        counted as active, see guard.py) in one statement; ends when no chunk is written."""
        while self._writers > 0:
            await asyncio.sleep(CHUNK_LEASE_RENEW_SECONDS)
            try:
                await self.db.run(
                    queries.renew_chunk_writers,
                    self.process_token,
                    self.clock(),
                    CHUNK_LEASE_SECONDS,
                )
            except Exception:
                log.warning("could not renew this process's chunk leases", exc_info=True)

    async def _keep_active(self, plan: ChunkPlan) -> None:
        """While a stream's body arrives, however long it takes, its upload stays active."""
        while True:
            await asyncio.sleep(ACTIVE_TOUCH_SECONDS)
            try:
                await self.db.run(queries.touch_upload, plan.upload.id, self.clock())
            except Exception:
                log.warning("could not mark %s active", plan.upload.id, exc_info=True)

    async def _claim_writer(self, upload: Upload, index: int, writer: str) -> bool:
        """Become the chunk's one writer. While another request holds it, wait (the body stays
        unread, up to BUSY_WAIT_SECONDS): it may finish (then this copy is a duplicate) or be
        cut (then this copy writes: a retry after a cut goes through at once). Polled: the
        other writer may be in another process."""
        deadline = time.monotonic() + BUSY_WAIT_SECONDS

        async def claim() -> bool:
            return bool(
                await self.db.run(
                    queries.claim_chunk_writer,
                    upload.id,
                    index,
                    writer,
                    self.clock(),
                    CHUNK_LEASE_SECONDS,
                )
            )

        while True:
            if await claim():
                return True
            counted, writing = await self.db.run(
                queries.chunk_writer_state, upload.id, index, self.clock()
            )
            if counted or time.monotonic() > deadline:
                return False
            if not writing:  # released just now (try once more), or the upload is gone
                return await claim()
            await asyncio.sleep(FINALIZE_POLL_SECONDS)

    def _stop_lease(self, plan: ChunkPlan) -> None:
        if plan.keep_lease is not None:
            plan.keep_lease.cancel()
            plan.keep_lease = None
        if plan.writer is not None and not plan.lease_done:
            plan.lease_done = True
            self._writers -= 1

    async def abort_chunk(self, plan: ChunkPlan) -> None:
        """A chunk that failed or was cut: its bytes don't count and its lease is given back."""
        self._stop_lease(plan)
        if plan.writer is not None:
            with contextlib.suppress(Exception):
                await self.db.run(
                    queries.release_chunk_writer, plan.upload.id, plan.index, plan.writer
                )
        if plan.upload.protocol == ONE_SHOT_BODY:
            await self.abandon_stream(plan)

    # --- admission: every way bytes enter goes through here ----------------------------------

    def active_since(self) -> float:
        """Uploads updated since then hold their space and quota (see guard.py)."""
        return self.clock() - self.settings.reserve_idle

    async def admit(
        self,
        owner: str,
        size: int | None,
        upload_id: str | None = None,
        then: Callable[[], Awaitable[T]] | None = None,
        quota: int | None = None,
    ) -> T | None:
        """The one admission: refuse (413, 507) `size` bytes that don't fit `--max-size`,
        `--min-free`, `--quota` or `--owner-quota`. `upload_id`: an upload that exists (resumed
        after idling, or whose length just became known): it asks for its whole `size`, its own
        row left out. `then` runs while admission is still held (create or record the upload
        there, so two admissions can't both take the last free space). `quota`: what the quotas
        count, when other than `size` (a concatenation: the bytes that were someone else's)."""
        async with self.admission:
            await guard.admit(
                self.settings,
                self.db,
                self.caps.free_space,
                owner,
                size,
                self.active_since(),
                upload_id or "",
                quota,
            )
            return await then() if then is not None else None

    def stream_guard(self, owner: str, upload_id: str = "") -> guard.StreamGuard | None:
        """Checks for a body whose length is unknown (or grows): call it with the upload's whole
        size so far before writing more; it raises 413/507 as `admit` would."""
        return guard.stream_guard(
            self.settings, self.db, self.caps.free_space, owner, self.active_since, upload_id
        )

    async def _readmit(self, upload: Upload) -> None:
        """An upload idle past `reserve_idle` held no space: take it again, or refuse (507)."""
        size = upload.size or 0

        async def touch() -> None:
            await self.db.run(queries.touch_upload, upload.id, self.clock())

        current = await self.db.run(queries.get_upload, upload.id)
        if current is not None and current.updated < self.active_since():
            await self.admit(upload.owner, size, upload.id, touch)

    async def _admit_chunked(self, owner: str, claim: ChunkClaim, now: float) -> Upload:
        """The first chunk of an upload: refused (507) unless the whole file fits, then created."""
        async with self.admission:
            upload = await self.db.run(queries.get_upload, claim.upload_id)
            if upload is not None:
                return upload  # a parallel first chunk of the same upload was admitted meanwhile
            await guard.admit(
                self.settings,
                self.db,
                self.caps.free_space,
                owner,
                claim.total_size,
                self.active_since(),
            )
            upload = Upload(
                id=claim.upload_id,
                owner=owner,
                name=sanitize(claim.filename),
                size=claim.total_size,
                chunk_size=claim.chunk_size,
                chunk_count=claim.count,
                protocol=DROPZONE_CHUNKS,
                state="receiving",
                created=now,
                updated=now,
                expires_in=claim.options.expires_in,
                max_downloads=claim.options.max_downloads,
                address=limits.client_address.get(),
            )
            # The partial file comes first (creating it is idempotent), so any chunk that finds
            # the row also finds the file; a crash in between leaves an orphan the janitor removes.
            await self.storage.create_partial(shape_of(upload))
            log_upload_start(claim.upload_id, DROPZONE_CHUNKS, claim.total_size, claim.count)
            return await self.db.run(queries.insert_upload, upload)

    def _check_same_upload(self, upload: Upload, claim: ChunkClaim) -> None:
        # No owner check: the dzuuid is the capability (as a tus upload URL is), so cookie-less
        # clients and parallel first chunks work; the owner only decides lists and deletion.
        if (upload.size, upload.chunk_size, upload.chunk_count) != (
            claim.total_size,
            claim.chunk_size,
            claim.count,
        ):
            raise Conflicting("chunk fields conflict with earlier chunks of this upload")

    async def _claim_owner(self, upload: Upload, owner: str) -> Upload:
        if upload.owner != NO_OWNER or owner == NO_OWNER:
            return upload
        await self.db.run(queries.claim_owner, upload.id, owner)
        return await self.db.run(queries.get_upload, upload.id) or upload

    async def _open_sink(
        self,
        upload: Upload,
        offset: int,
        on_written: OnWritten | None = None,
        length: int | None = None,
    ) -> ChunkSink:
        try:
            return await self.storage.open_chunk(shape_of(upload), offset, on_written, length)
        except FileNotFoundError:
            # The row exists but its partial file is gone (janitor, operator): start it again.
            await self.db.run(queries.delete_upload, upload.id)
            raise UploadDiscarded(
                "this upload was discarded by the server; start it again"
            ) from None

    async def begin_stream(
        self,
        owner: str,
        filename: str | None,
        size: int | None,
        options: lifecycle.FileOptions = lifecycle.NO_OPTIONS,
    ) -> ChunkPlan:
        """A one-shot upload (Dropzone without chunking, or PUT): one chunk of any length."""
        upload = self.one_chunk_upload(
            owner,
            filename,
            size,
            ONE_SHOT_BODY,
            expires_in=options.expires_in,
            max_downloads=options.max_downloads,
        )
        plan = await self.begin_in_order(await self.open_upload(upload), 0, size)
        plan.keep_lease = asyncio.create_task(self._keep_active(plan))
        return plan

    def one_chunk_upload(
        self, owner: str, filename: str | None, size: int | None, protocol: str, **more: Any
    ) -> Upload:
        """The row of a new upload of one chunk (a stream, tus), its size maybe unknown."""
        now = self.clock()
        return Upload(
            id=str(uuid.uuid4()),
            owner=owner,
            name=sanitize(filename),
            size=size,
            chunk_size=max(size or 0, 1),
            chunk_count=1,
            protocol=protocol,
            state="receiving",
            created=now,
            updated=now,
            address=limits.client_address.get(),
            **more,
        )

    async def open_upload(self, upload: Upload) -> Upload:
        """A new upload of one chunk (a stream, tus): admitted, then its partial and its row."""

        async def create() -> Upload:
            await self.storage.create_partial(shape_of(upload))
            return await self.db.run(queries.insert_upload, upload)

        created = await self.admit(upload.owner, upload.size, then=create)
        log_upload_start(upload.id, upload.protocol, upload.size, upload.chunk_count)
        self.counters["chunk_requests"] += 1
        return created or upload

    async def begin_in_order(
        self,
        upload: Upload,
        offset: int,
        length: int | None = None,
        holder: str | None = None,
        *,
        also: Any = None,
        save: bool = False,
        hashed: bool = True,
        beside: bool = False,
    ) -> ChunkPlan:
        """Bytes of a one-chunk upload arriving in order at `offset`: a stream's whole body (its
        `length` when known), or a tus write from `holder` of the upload's write lock. Hashed as
        they are written (`hashed`; `also` is another hasher they go through, a checksum), or,
        for a tus write without `also`, `beside` them so that it may count before its last bytes
        are hashed (hash_lane.py); a long body counts as it goes (`save`; see saving.py).
        Counted by `complete_chunk`."""
        lane = inline = None
        beside = beside and hashed and holder is not None and also is None
        if beside:
            lane = self._lane_at(upload.id, offset)
        if lane is None and hashed:
            inline = await self._start_inline_hash(upload.id, offset, catch_up=offset > 0)
            if beside and inline is not None:
                lane = HashLane(inline.hasher, offset)
                progress = self.hash_progress(upload.id)
                progress.lane, progress.lane_end, inline = lane, offset, None
        on_written = _written_hook(inline, also)

        async def open_at(start: int, length: int | None = None) -> ChunkSink:
            sink = await self._open_sink(upload, start, on_written, length)
            return sink if lane is None else LaneSink(sink, lane)

        sink = await open_at(offset, length)
        size = upload.size if upload.size is not None else self.settings.max_size_bytes
        plan = ChunkPlan(upload, 0, offset, length, sink, max(0, size - offset), holder=holder)
        plan.inline_hash, plan.hash_lane = inline, lane
        if upload.size is None and (grows := self.stream_guard(upload.owner, upload.id)):
            # The guard takes the upload's whole size so far.
            plan.check_stream = lambda received: grows(offset + received)
        if save:

            async def reopen(written: int) -> ChunkSink:
                return await open_at(offset + written)

            async def record(written: int) -> None:
                if self.settings.fsync and self.caps.partial_files is not None:
                    await self.caps.partial_files.flush_partial(upload.id)
                await self._record_offset(plan, written)

            plan.sink = SavingSink(sink, reopen, record)
        return plan

    async def _record_offset(self, plan: ChunkPlan, written: int, release: bool = False) -> Upload:
        """The upload's offset moves past the `written` bytes of an in-order write, and the
        file's hash with it; `release`: the holder lets go of the upload's lock in the same
        statement. The upload as it is then."""
        assert plan.holder is not None
        end = plan.offset + written
        start = plan.offset + plan.saved
        advanced = await self.db.run(
            tus_queries.advance_offset,
            *(plan.upload.id, plan.holder, start, end, self.clock(), release),
        )
        if advanced is None:
            if await self.db.run(queries.get_upload, plan.upload.id) is None:
                raise UploadNotFound("the upload was terminated while it was written")
            raise OffsetMismatch(
                "this upload changed while the request was written; ask its offset"
            )
        if plan.hash_lane is not None:  # the answer need not wait for the hash
            self._adopt_when_hashed(plan.upload.id, plan.hash_lane, end)
        elif plan.inline_hash is not None:
            self._adopt_inline_hash(plan.upload.id, plan.inline_hash, end)
        plan.saved = written
        return advanced

    async def _count_at_offset(self, plan: ChunkPlan, written: int) -> ChunkOutcome:
        if plan.verify is not None:
            plan.verify()
        # No fdatasync here (a PATCH per 8 MiB chunk would wait for the disk each time): the
        # bytes are in the page cache, which a crash of this process does not lose, and
        # finalizing flushes the whole file. Only saves in the middle of a body flush first.
        end = plan.offset + written
        size = plan.upload.size
        # A write that leaves the upload unfinished counts and lets go of its lock in one
        # statement; the one that completes it keeps the lock until the file is published.
        upload = await self._record_offset(plan, written, release=size is not None and end < size)
        # A part of a later concatenation is not published itself.
        if upload.concat is None and upload.size is not None and end == upload.size:
            stored = await self.complete_upload(upload)
            return ChunkOutcome("done", file=stored)
        return ChunkOutcome("received", offset=end, upload=upload)

    async def complete_upload(self, upload: Upload) -> StoredFile:
        """An upload of one chunk whose bytes are all in (tus): count the chunk, and finalize."""
        await self.db.run(queries.record_chunk, upload.id, 0, self.clock())
        self.counters["chunks_counted"] += 1
        return await self.finalize(upload.id, upload.owner)

    async def concatenate(self, upload: Upload, parts: list[Upload]) -> StoredFile:
        """A new upload made of complete uploads' bytes, in order (tus); the parts then go.

        The parts were admitted when they were created (their owners' quotas count them), and
        they go once joined: the owner's quota takes only the bytes that were someone else's;
        the disk needs the whole size until then (the parts stay while they are copied)."""
        total = sum(part.size or 0 for part in parts)
        theirs = sum(part.size or 0 for part in parts if part.owner != upload.owner)

        async def create() -> Upload:
            return await self.db.run(queries.insert_upload, upload)

        # As an upload that exists (its id): not a new upload for the caps (limits.py), it
        # replaces its parts, which were counted.
        await self.admit(upload.owner, total, upload.id, then=create, quota=theirs)
        joining = self.caps.concatenation
        if joining is None:
            raise NotSupportedByStorage("this server's storage can't concatenate uploads")
        started = time.perf_counter()
        try:
            how = await joining.join_partials(
                upload.id, [(part.id, part.size or 0) for part in parts]
            )
        except BaseException as error:
            await self.discard(upload)
            if isinstance(error, FileNotFoundError):
                raise Conflicting("a partial upload was removed during the concatenation") from None
            raise
        log.info(
            "joined %d partial uploads (%d bytes) by %s in %.3f s",
            len(parts), total, how, time.perf_counter() - started,
        )  # fmt: skip
        await self.db.run(tus_queries.set_joined, upload.id, total, self.clock())
        stored = await self.complete_upload(upload)
        for part in parts:
            await self.discard(part)
        return stored

    async def discard(self, upload: Upload) -> None:
        """An upload and its bytes go (a finished one only its row: the file is its own)."""
        self.forget_hash(upload.id)
        if upload.state != "done":
            await self.storage.discard_partial(upload.id)
        await self.db.run(queries.delete_upload, upload.id)

    async def complete_chunk(self, plan: ChunkPlan, written: int) -> ChunkOutcome:
        """Count a chunk whose bytes are all written; finalize when it was the last one."""
        upload = plan.upload
        self._stop_lease(plan)
        if plan.length is not None and written != plan.length:
            if plan.writer is not None:
                await self.db.run(queries.release_chunk_writer, upload.id, plan.index, plan.writer)
            raise Invalid(f"chunk has {written} bytes, expected {plan.length}")
        if plan.busy:
            counted, _ = await self.db.run(
                queries.chunk_writer_state, upload.id, plan.index, self.clock()
            )
            if not counted:
                raise ChunkBusy("another request is writing this chunk; send it again shortly")
            self.counters["duplicate_chunks"] += 1
        if plan.sink is None:
            return ChunkOutcome("duplicate", total=upload.chunk_count)
        if plan.holder is not None:
            return await self._count_at_offset(plan, written)
        if plan.length is None:
            upload = await self._fix_stream_size(upload, written)
        recorded: tuple[bool, int] | None
        if upload.protocol == ONE_SHOT_BODY:
            recorded = await self.db.run(queries.record_chunk, upload.id, plan.index, self.clock())
        else:
            assert plan.writer is not None
            recorded = await self.db.run(
                queries.record_written_chunk, upload.id, plan.index, plan.writer, self.clock()
            )
        if recorded is None:  # our lease ran out (a stalled process) and another writer took it
            raise ChunkBusy("this chunk was taken over by another request; send it again")
        new, received = recorded
        self.counters["chunks_counted" if new else "duplicate_chunks"] += 1
        if new and plan.inline_hash is not None:
            self._adopt_inline_hash(upload.id, plan.inline_hash, plan.offset + written)
        self._note_received(upload, plan.index)
        if received < upload.chunk_count:
            return ChunkOutcome("received", total=upload.chunk_count, received_count=received)
        return ChunkOutcome("done", file=await self.finalize(upload.id, upload.owner))

    async def _fix_stream_size(self, upload: Upload, size: int) -> Upload:
        await self.db.run(queries.set_stream_size, upload.id, size)
        fixed = await self.db.run(queries.get_upload, upload.id)
        assert fixed is not None
        return fixed

    async def abandon_stream(self, plan: ChunkPlan) -> None:
        """A one-shot upload that failed has nothing to resume: drop it entirely."""
        await self.discard(plan.upload)

    # --- hashing as the contiguous prefix grows ----------------------------------------------

    def hash_progress(self, upload_id: str) -> HashProgress:
        """This process's SHA-256 of the upload's first `position` bytes (finalize reads the rest);
        bytes written in order move it on as they count (`_adopt_inline_hash`)."""
        return self._hashing.setdefault(upload_id, HashProgress())

    def _adopt_inline_hash(self, upload_id: str, inline: HashProgress, end: int) -> None:
        """The bytes counted: if the file's hash still stands at their start, it moves past them
        (on a copy: the inline hash goes on with the bytes of the same body still to come)."""
        progress = self.hash_progress(upload_id)
        if progress.position == inline.position and not progress.lock.locked():
            progress.hasher, progress.position = inline.hasher.copy(), end
        inline.position = end

    def _lane_at(self, upload_id: str, offset: int) -> HashLane | None:
        """The upload's hash lane, if it goes on at `offset`: every byte it took counted, and
        they end there. The write then waits for no hash (the one before may still be hashed)."""
        progress = self._hashing.get(upload_id)
        if progress is None or (lane := progress.lane) is None or lane.failed:
            return None
        return lane if lane.position == progress.lane_end == offset else None

    def _adopt_when_hashed(self, upload_id: str, lane: HashLane, end: int) -> None:
        """The file's hash moves to `end`, the bytes a write took through `lane` that counted,
        once the lane has hashed them; the finish, and a write the lane does not continue, wait
        for it (`hash_settled`). Adopted in the order the writes counted."""
        progress = self.hash_progress(upload_id)
        if progress.lane is not lane or lane.position != end:
            # It took bytes that do not count (a write cut in the store): it hashes for no one
            # now, and the next write reads back what the file's hash lacks.
            if progress.lane is lane:
                progress.lane = None
            return
        progress.lane_end = end
        snapshot = lane.snapshot()
        before = progress.pending

        async def adopt() -> None:
            if before is not None:
                await before  # (never raises: see below)
            try:
                hasher = await snapshot
            except Exception:  # not adopted: the next write reads the bytes back (catch_up)
                log.warning("could not hash upload %s as it was written", upload_id, exc_info=True)
                return
            if progress.position < end and not progress.lock.locked():
                progress.hasher, progress.position = hasher, end

        progress.pending = asyncio.create_task(adopt())

    async def hash_settled(self, upload_id: str) -> None:
        """Wait for the hash a write left to adopt (shielded: a request cut meanwhile must not
        cancel it)."""
        progress = self._hashing.get(upload_id)
        if progress is not None and progress.pending is not None:
            await asyncio.shield(progress.pending)

    def forget_hash(self, upload_id: str) -> None:
        self._hashing.pop(upload_id, None)

    def _note_received(self, upload: Upload, index: int) -> None:
        if self.caps.partial_files is None:
            return
        progress = self._hashing.setdefault(upload.id, HashProgress())
        progress.received.add(index)
        task = self._hash_tasks.get(upload.id)
        if task is None or task.done():
            self._hash_tasks[upload.id] = asyncio.create_task(self._advance_hash(upload, False))

    async def _advance_hash(self, upload: Upload, to_end: bool) -> None:
        files = self.caps.partial_files
        assert files is not None  # only stores whose partials can be read back hash them
        progress = self._hashing.setdefault(upload.id, HashProgress())
        size = upload.size or 0
        async with progress.lock:
            while progress.position < size:
                index = progress.position // upload.chunk_size
                if not to_end and index not in progress.received:
                    return
                end = min(size, (index + 1) * upload.chunk_size)
                await files.hash_partial(upload.id, progress.hasher, progress.position, end)
                progress.position = end

    async def _sha256(self, upload: Upload) -> str:
        await self.hash_settled(upload.id)
        task = self._hash_tasks.pop(upload.id, None)
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        await self._advance_hash(upload, True)
        progress = self._hashing.pop(upload.id)
        return str(progress.hasher.hexdigest())

    # --- finishing ---------------------------------------------------------------------------

    async def finalize(self, upload_id: str, owner: str) -> StoredFile:
        """Publish the upload once every chunk is in; concurrent callers get the same file.

        `owner` claims an upload that has none yet (see NO_OWNER); anyone may finish it."""
        deadline = self.clock() + FINALIZE_WAIT_SECONDS
        while True:
            upload = await self.db.run(queries.get_upload, upload_id)
            if upload is None:
                raise UploadNotFound("no such upload")
            upload = await self._claim_owner(upload, owner)
            if upload.state == "done" and upload.file_id:
                stored = await self.db.run(queries.get_file, upload.file_id)
                if stored is None:
                    raise FileNotFound("the file of this upload was deleted")
                if stored.gone:
                    raise FileGone(lifecycle.gone_message(stored.gone))
                return stored
            if upload.received_count < upload.chunk_count:
                received = await self.db.run(queries.received_chunks, upload_id)
                if len(received) < upload.chunk_count:
                    missing = sorted(set(range(upload.chunk_count)) - set(received))
                    raise ChunksMissing(
                        f"{len(missing)} of {upload.chunk_count} chunks are missing",
                        missing=missing[:1000],
                    )
            if await self.db.run(
                queries.claim_finalize, upload_id, self.clock(), FINALIZE_LEASE_SECONDS
            ):
                return await self._finalize_claimed(upload)
            if self.clock() > deadline:
                raise Unavailable("the file is still being finished; ask again later")
            await asyncio.sleep(FINALIZE_POLL_SECONDS)

    async def _finalize_claimed(self, upload: Upload) -> StoredFile:
        started = time.perf_counter()
        keep_lease = asyncio.create_task(self._keep_lease(upload.id))
        try:
            size = upload.size or 0
            if self.caps.partial_files is not None:
                path, sha256, linked_from = await self._publish_hashed(
                    upload, size, self.caps.partial_files
                )
            else:
                # An object store: parts can be read only once completed, so publish, then hash.
                taken = await self.db.run(queries.paths_in_use)
                path = await self.storage.publish(upload.id, upload.name, taken)
                sha256, linked_from = await self._sha256_published(upload.id, path, size), None
            file_id = new_public_id()
            now = self.clock()
            stored = StoredFile(
                id=file_id,
                owner=upload.owner,
                name=upload.name,  # as the uploader sent it; `path` is unique on disk
                path=path,
                size=size,
                sha256=sha256,
                created=now,
                expires=lifecycle.expiry(self.settings, upload.expires_in, now),
                max_downloads=upload.max_downloads,
                delete_token=lifecycle.token_hash(await self.delete_token(file_id)),
                linked_from=linked_from,
                upload_id=upload.id,
                content_type=upload.content_type,
                # Every counted chunk had one writer and is never written again, so the hash
                # (inline, or read back once counted) is the hash of the bytes published.
                hash_trusted=True,
            )
            await self.db.run(queries.publish, stored, upload.id, self.clock())
        except BaseException:
            self._hashing.pop(upload.id, None)
            with contextlib.suppress(Exception):
                await self.db.run(queries.release_finalize, upload.id, self.clock())
            raise
        finally:
            keep_lease.cancel()
        # Only now: until the file is recorded, a second attempt needs the partial's bytes.
        # The file is published whatever happens here; the janitor removes a leftover partial.
        try:
            await self.storage.discard_partial(upload.id)
        except Exception:
            log.warning("could not remove the partial of %s yet", upload.id, exc_info=True)
        self.counters["files_published"] += 1
        self.metrics.finish_seconds.observe(time.perf_counter() - started)
        self.metrics.files_stored.inc()
        self.metrics.stored_bytes.inc(stored.size)
        log.info(
            "upload %s stored as file %s %r (%d bytes, sha256 %s)",
            upload.id, ref(stored.id), stored.path, stored.size, stored.sha256,
        )  # fmt: skip
        return stored

    async def release_dead_finishers(self) -> int:
        """At the start of the only server process: leases left by a crash belong to no one.

        Without this, an upload caught mid-finalize by a crash waits out the whole lease. (With
        several workers, or servers sharing PostgreSQL, a starting process can't tell whose a
        lease is, so there leases expire instead.)
        """
        released = await self.db.run(queries.release_all_finalizing, self.clock())
        await self.db.run(queries.release_all_chunk_writers)
        if released:
            log.warning("released %d upload(s) left finalizing by a previous run", released)
        return released

    async def _sha256_published(self, upload_id: str, path: str, size: int) -> str:
        """A stream hashed on its way in needs no read-back; chunks from anywhere do."""
        progress = self._hashing.pop(upload_id, None)
        if progress is not None and progress.position == size:
            return str(progress.hasher.hexdigest())
        # Read back whole: the true SHA-256 whatever order the parts came in.
        digest = hashlib.sha256()
        if size == 0:
            return digest.hexdigest()  # no range to ask for
        async for piece in self.storage.open_range(path, 0, size):
            await asyncio.to_thread(digest.update, piece)
        return digest.hexdigest()

    async def _publish_hashed(
        self, upload: Upload, size: int, files: PartialFiles
    ) -> tuple[str, str, str | None]:
        """Flush, finish the hash, then link to identical bytes or publish: (path, sha256, from)."""
        # Bytes past `size` (a refused or overlong write) must not be published with the file.
        await files.truncate_partial(upload.id, size)
        if self.settings.fsync:
            started = time.perf_counter()
            await files.flush_partial(upload.id)
            self.metrics.fsync_seconds.observe(time.perf_counter() - started)
        sha256 = await self._sha256(upload)
        taken = await self.db.run(queries.paths_in_use)
        linking = self.caps.duplicate_linking
        original = None
        if linking is not None:
            original = await self.db.run(queries.file_with_content, sha256, size)
        path = None
        # Only onto a file whose bytes can't differ from its record: trusted hash (the query),
        # and still its recorded size on disk.
        if (
            linking is not None
            and original is not None
            and await linking.size_of(original.path) == size
        ):
            path = await linking.link_duplicate(upload.id, original.path, upload.name, taken)
        linked_from = original.id if path is not None and original is not None else None
        if path is None:
            path = await self.storage.publish(upload.id, upload.name, taken)
        return path, sha256, linked_from

    async def _keep_lease(self, upload_id: str) -> None:
        while True:
            await asyncio.sleep(FINALIZE_LEASE_SECONDS / 3)
            until = self.clock() + FINALIZE_LEASE_SECONDS
            await self.db.run(queries.extend_lease, upload_id, until)

    # --- the uploader's view ------------------------------------------------------------------

    async def key(self) -> bytes:
        """The server's secret key (shared through the database by every process)."""
        if self._key is None:
            self._key = await lifecycle.server_key(self.db)
        return self._key

    async def delete_token(self, file_id: str) -> str:
        return lifecycle.delete_token(await self.key(), file_id)

    # --- reading the books -------------------------------------------------------------------

    async def state_of(self, upload_id: str) -> UploadState:
        """The state of an upload, for whoever names it (its id is the capability)."""
        upload = await self.db.run(queries.get_upload, upload_id)
        if upload is None:
            raise UploadNotFound("no such upload")
        if upload.state == "done" and upload.file_id:
            stored = await self.db.run(queries.get_file, upload.file_id)
            return UploadState(upload, list(range(upload.chunk_count)), stored)
        return UploadState(upload, await self.db.run(queries.received_chunks, upload.id))

    # --- housekeeping --------------------------------------------------------------------------

    async def remove_abandoned(self) -> int:
        """Partial uploads idle longer than `abandon_after`: rows and bytes go."""
        idle_since = self.clock() - self.settings.abandon_after
        removed = 0
        for upload in await self.db.run(queries.idle_uploads, idle_since):
            if upload.state == "finalizing" and (upload.lease_until or 0) > self.clock():
                continue
            if (upload.lock_until or 0) > self.clock():
                continue  # a request is writing to it right now
            await self.discard(upload)
            removed += 1
        await self.db.run(queries.old_done_uploads, idle_since)
        removed += await self._remove_orphan_partials(idle_since)
        if removed:
            log.info("janitor removed %d abandoned partial upload(s)", removed)
        return removed

    async def _remove_orphan_partials(self, idle_since: float) -> int:
        """Partials with no upload (idle ones), and those of published uploads (any age: only a
        crash between recording the file and removing its partial leaves one)."""
        removed = 0
        idle = set(await self.storage.orphan_partials(idle_since))
        for upload_id in await self.storage.orphan_partials(self.clock() + 1):
            upload = await self.db.run(queries.get_upload, upload_id)
            if (upload is None and upload_id in idle) or (upload and upload.state == "done"):
                await self.storage.discard_partial(upload_id)
                removed += 1
        return removed

    async def run_janitor(self) -> None:
        while True:
            try:
                await self.remove_abandoned()
                await lifecycle.purge(self.db, self.storage, self.clock())
                self.metrics.janitor_runs.labels("ok").inc()
            except Exception:
                self.metrics.janitor_runs.labels("failed").inc()
                log.exception("janitor pass failed; will try again")
            await asyncio.sleep(JANITOR_INTERVAL_SECONDS)
