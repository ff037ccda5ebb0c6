"""The disk guard and the quotas: a new upload is refused before any byte of it is written.

An upload is admitted when, after taking its whole size, the storage filesystem keeps `min_free`
bytes free and the stored bytes stay within `quota` (all owners) and `owner_quota` (its owner).
The free space is what statvfs reports minus what uploads in progress still have a claim on: a
partial file is preallocated (posix_fallocate) when its upload begins, so statvfs already counts
its blocks; only the part of an upload not yet allocated (a filesystem that does not preallocate)
is subtracted again. Admission is serialized in the process, so two uploads can't both take the
last free gigabyte; uploads of unknown size (a streamed one-shot body) are checked as they stream.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from pyfiledrop import limits
from pyfiledrop.config import Settings
from pyfiledrop.errors import InsufficientStorage
from pyfiledrop.meta import Database, queries
from pyfiledrop.storage import Storage
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.units import format_size

STREAM_CHECK_BYTES = 4 * 1024 * 1024  # more than a sink keeps unwritten (two 1 MiB batches)

StreamGuard = Callable[[int], Awaitable[None]]


class OverQuota(InsufficientStorage):
    code = "over_quota"


def _unallocated(storage: LocalStorage, upload_id: str, size: int) -> int:
    """Bytes of an upload in progress that its partial file does not hold blocks for yet."""
    try:
        allocated = os.stat(storage.partial_path(upload_id)).st_blocks * 512
    except FileNotFoundError:
        allocated = 0
    return max(0, size - allocated)


async def reserved_bytes(db: Database, storage: LocalStorage) -> int:
    """What uploads in progress will still take from the free space statvfs reports."""
    reserved = 0
    for upload in await db.run(queries.receiving_uploads):
        if upload.size:
            reserved += _unallocated(storage, upload.id, upload.size)
    return reserved


async def check_space(settings: Settings, db: Database, storage: Storage, size: int) -> None:
    if not isinstance(storage, LocalStorage):
        return  # an object store (S3) has no free space to guard; quotas still apply
    if settings.min_free <= 0 and size <= 0:
        return
    free = storage.free_bytes()
    if free - size - await db.run(queries.bytes_receiving) >= settings.min_free:
        return  # fits even if no upload in progress had its space yet: no need to look closer
    free -= await reserved_bytes(db, storage)
    if free - size < settings.min_free:
        # Not how much is free: that would tell any client what the others store, byte by byte.
        raise InsufficientStorage(
            f"not enough space on the server for {format_size(size)}"
            f" (it keeps {format_size(settings.min_free)} free)",
            min_free=settings.min_free,
        )


async def check_quotas(settings: Settings, db: Database, owner: str, size: int) -> None:
    if settings.quota is not None:
        used = await db.run(queries.bytes_in_use, None)
        if used + size > settings.quota:
            raise OverQuota(
                f"the server's storage quota of {format_size(settings.quota)} would be exceeded",
                quota=settings.quota,
            )
    if settings.owner_quota is not None:
        used = await db.run(queries.bytes_in_use, owner)
        if used + size > settings.owner_quota:
            raise OverQuota(
                f"your quota of {format_size(settings.owner_quota)} would be exceeded "
                f"({format_size(used)} in use); delete some files first",
                quota=settings.owner_quota,
                used=used,
            )


async def admit(
    settings: Settings, db: Database, storage: Storage, owner: str, size: int | None
) -> None:
    """Refuse (507) a new upload of `size` bytes (None: not known yet) that does not fit, and
    (429) one past the caps on uploads in progress."""
    await limits.admit(settings, db, owner)
    await check_quotas(settings, db, owner, size or 0)
    await check_space(settings, db, storage, size or 0)


async def _quota_room(settings: Settings, db: Database, owner: str) -> int | None:
    rooms = []
    if settings.quota is not None:
        rooms.append(settings.quota - await db.run(queries.bytes_in_use, None))
    if settings.owner_quota is not None:
        rooms.append(settings.owner_quota - await db.run(queries.bytes_in_use, owner))
    return min(rooms) if rooms else None


def stream_guard(
    settings: Settings, db: Database, storage: Storage, owner: str
) -> StreamGuard | None:
    """For a body of unknown size: the same checks as it arrives, before each piece is written.

    The quota room is looked up once (and again only when it seems used up); the free space is
    looked at every STREAM_CHECK_BYTES, asking for room for the next step: the bytes received so
    far are on disk, or in the sink's last batches (fewer than a step), so statvfs shows them.
    """
    if settings.min_free <= 0 and settings.quota is None and settings.owner_quota is None:
        return None
    room: int | None = None
    looked_up = False
    next_space_check = 0

    async def check(received: int) -> None:
        nonlocal room, looked_up, next_space_check
        if not looked_up:
            room, looked_up = await _quota_room(settings, db, owner), True
        if room is not None and received > room:
            await check_quotas(settings, db, owner, received)  # raises, saying which quota
            room = await _quota_room(settings, db, owner)  # or others made room meanwhile
        if settings.min_free > 0 and received >= next_space_check:
            next_space_check = received + STREAM_CHECK_BYTES
            await check_space(settings, db, storage, STREAM_CHECK_BYTES)

    return check
