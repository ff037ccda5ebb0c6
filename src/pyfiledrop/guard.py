"""The disk guard and the quotas: a new upload is refused before any byte of it is written.

An upload is admitted when, after taking its whole size, the storage filesystem keeps `min_free`
bytes free and the stored bytes stay within `quota` (all owners) and `owner_quota` (its owner).
The free space is what statvfs reports minus what the *active* uploads in progress will still
write: their unwritten bytes (a chunk's range is allocated only when that chunk starts, so statvfs
counts what is written or being written). An upload is active while a chunk arrived or is being
written within `reserve_idle` (default 5 minutes); an idle one stops holding space and quota
beyond what it has written, and is admitted again, like a new one, when its next chunk comes. So
one request that sends nothing holds space for minutes, not for `abandon_after`.

Admission is serialized in the process (`Uploads.admit`), so two uploads can't both take the last
free gigabyte; uploads of unknown size (a streamed one-shot body) are checked as they stream.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pyfiledrop import limits
from pyfiledrop.config import Settings
from pyfiledrop.errors import NoSpace, OverQuota, TooLarge
from pyfiledrop.meta import Database, queries
from pyfiledrop.storage import FreeSpace
from pyfiledrop.units import format_size

STREAM_CHECK_BYTES = 4 * 1024 * 1024  # more than a sink keeps unwritten (two 1 MiB batches)

StreamGuard = Callable[[int], Awaitable[None]]


async def reserved_bytes(
    db: Database, space: FreeSpace, active_since: float, exclude: str = ""
) -> int:
    """What the active uploads in progress will still take from the free space statvfs reports."""
    reserved = 0
    for upload in await db.run(queries.active_uploads, active_since, exclude):
        if upload.size:
            reserved += space.unallocated(upload.id, upload.size)
    return reserved


async def check_space(
    settings: Settings,
    db: Database,
    space: FreeSpace | None,
    size: int,
    active_since: float,
    upload_id: str = "",
) -> None:
    """Room for `size` more bytes (of upload `upload_id`, when it exists: its own blocks count).
    `space`: the store's free space (None: an object store (S3) has none to guard; quotas still
    apply)."""
    if space is None:
        return
    if settings.min_free <= 0 and size <= 0:
        return
    if upload_id:
        size = space.unallocated(upload_id, size)
    free = space.free_bytes()
    receiving = await db.run(queries.bytes_receiving, active_since, upload_id)
    if free - size - receiving >= settings.min_free:
        return  # fits even if no upload in progress had its space yet: no need to look closer
    free -= await reserved_bytes(db, space, active_since, upload_id)
    if free - size < settings.min_free:
        # Not how much is free: that would tell any client what the others store, byte by byte.
        raise NoSpace(
            f"not enough space on the server for {format_size(size)}"
            f" (it keeps {format_size(settings.min_free)} free)",
            min_free=settings.min_free,
        )


async def check_quotas(
    settings: Settings,
    db: Database,
    owner: str,
    size: int,
    active_since: float,
    upload_id: str = "",
) -> None:
    if settings.quota is not None:
        used = await db.run(queries.bytes_in_use, None, active_since, upload_id)
        if used + size > settings.quota:
            raise OverQuota(
                f"the server's storage quota of {format_size(settings.quota)} would be exceeded",
                quota=settings.quota,
            )
    if settings.owner_quota is not None:
        used = await db.run(queries.bytes_in_use, owner, active_since, upload_id)
        if used + size > settings.owner_quota:
            raise OverQuota(
                f"your quota of {format_size(settings.owner_quota)} would be exceeded "
                f"({format_size(used)} in use); delete some files first",
                quota=settings.owner_quota,
                used=used,
            )


async def admit(
    settings: Settings,
    db: Database,
    space: FreeSpace | None,
    owner: str,
    size: int | None,
    active_since: float | None = None,
    upload_id: str = "",
    quota: int | None = None,
) -> None:
    """Refuse (413, 507) an upload of `size` bytes (None: not known yet) that does not fit; a new
    one also (429) past the caps on uploads in progress. `quota`: the bytes the quotas count,
    when other than `size`.

    `upload_id`: an upload that exists already (resumed after idling, or whose length just became
    known); its own row is left out of the sums and its whole `size` is asked for instead.
    Callers hold `Uploads.admission` (see `Uploads.admit`).
    """
    if active_since is None:
        active_since = time.time() - settings.reserve_idle
    if size is not None and size > settings.max_size_bytes:
        raise TooLarge(f"file is larger than the limit of {settings.max_size} MiB")
    if not upload_id:
        await limits.admit(settings, db, owner)  # a new upload: the caps on uploads in progress
    counted = (size or 0) if quota is None else quota
    await check_quotas(settings, db, owner, counted, active_since, upload_id)
    await check_space(settings, db, space, size or 0, active_since, upload_id)


async def _quota_room(
    settings: Settings, db: Database, owner: str, active_since: float, upload_id: str
) -> int | None:
    rooms = []
    if settings.quota is not None:
        used = await db.run(queries.bytes_in_use, None, active_since, upload_id)
        rooms.append(settings.quota - used)
    if settings.owner_quota is not None:
        used = await db.run(queries.bytes_in_use, owner, active_since, upload_id)
        rooms.append(settings.owner_quota - used)
    return min(rooms) if rooms else None


def stream_guard(
    settings: Settings,
    db: Database,
    space: FreeSpace | None,
    owner: str,
    active_since: Callable[[], float],
    upload_id: str = "",
) -> StreamGuard | None:
    """For a body whose size is not known (or grows): the same checks as it arrives, before each
    piece is written; `received` is the upload's whole size so far (its row is left out).

    The quota room is looked up once (and again only when it seems used up); the free space is
    looked at every STREAM_CHECK_BYTES, asking for room for the next step: the bytes received so
    far are on disk, or in the sink's last batches (fewer than a step), so statvfs shows them.
    """
    limit = settings.max_size_bytes
    checks_space = settings.min_free > 0 and space is not None
    if not checks_space and settings.quota is None and settings.owner_quota is None:
        return None  # the caller caps the body at `max_size` (ChunkPlan.limit)
    room: int | None = None
    looked_up = False
    next_space_check = 0

    async def check(received: int) -> None:
        nonlocal room, looked_up, next_space_check
        if received > limit:
            raise TooLarge(f"file is larger than the limit of {settings.max_size} MiB")
        if not looked_up:
            room, looked_up = (
                await _quota_room(settings, db, owner, active_since(), upload_id),
                True,
            )
        if room is not None and received > room:
            # raises, saying which quota, unless others made room meanwhile
            await check_quotas(settings, db, owner, received, active_since(), upload_id)
            room = await _quota_room(settings, db, owner, active_since(), upload_id)
        if checks_space and received >= next_space_check:
            next_space_check = received + STREAM_CHECK_BYTES
            await check_space(settings, db, space, STREAM_CHECK_BYTES, active_since())

    return check
