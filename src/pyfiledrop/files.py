"""Published files as the web layer, the operator's commands and `stats` see them.

The one way outside the upload core to find, list, count and delete published files: each
function reads or changes the books and hands back rows (`StoredFile`) or a small dataclass; the
callers build their JSON, HTML or text from those. Removal itself is `lifecycle.remove_file`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from pyfiledrop import lifecycle
from pyfiledrop.errors import FileGone, FileNotFound
from pyfiledrop.meta import Database, StoredFile, queries
from pyfiledrop.uploads import Uploads

# The shape of every public id (files and shares): anything else is a 404 before the books.
PUBLIC_ID_FORM = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
NOT_YOURS = "no such file, or not yours to delete"


@dataclass(frozen=True)
class StorageStats:
    """What `pyfiledrop stats` prints; the field order is its JSON's key order."""

    files: int
    bytes: int
    bytes_saved_by_dedup: int
    deduplicated_files: int
    uploads_in_progress: int
    bytes_reserved_by_uploads: int


async def find_file(db: Database, file_id: str) -> StoredFile | None:
    """The row of a file, served or a tombstone; None if the id was never published."""
    return await db.run(queries.get_file, file_id)


async def all_files(db: Database, include_gone: bool = False) -> list[StoredFile]:
    """Newest first; with `include_gone`, the tombstones too."""
    return await db.run(queries.all_files_and_tombstones if include_gone else queries.all_files)


async def served_file(
    core: Uploads, file_id: str, owner: str | None = None, allow_used_up: bool = False
) -> StoredFile:
    """A served file: 404 if unknown (or not `owner`'s), 410 with the reason if no longer served.

    A file removed from disk behind the server's back is noticed here and marked gone.
    """
    if not PUBLIC_ID_FORM.match(file_id):
        raise FileNotFound("no such file")
    stored = await find_file(core.db, file_id)
    if stored is None or (owner is not None and not secrets.compare_digest(stored.owner, owner)):
        raise FileNotFound("no such file")
    now = core.clock()
    reason = lifecycle.why_gone(stored, now)
    if reason is None or (reason == lifecycle.USED_UP and allow_used_up):
        if not await lifecycle.notice_missing(core.db, core.storage, stored, now):
            return stored
        reason = lifecycle.MISSING
    raise FileGone(lifecycle.gone_message(reason), reason=reason)


async def served_files_of(core: Uploads, owner: str) -> list[StoredFile]:
    """The owner's files whose links work now: not expired, not used up, and really on disk."""
    now = core.clock()
    served = []
    for stored in await core.db.run(queries.files_of_owner, owner):
        if lifecycle.why_gone(stored, now) is None and not await lifecycle.notice_missing(
            core.db, core.storage, stored, now
        ):
            served.append(stored)
    return served


async def delete_own_file(core: Uploads, file_id: str, owner: str, token: str | None) -> None:
    """Delete for its owner or the holder of its delete token; anyone else learns nothing."""
    if not PUBLIC_ID_FORM.match(file_id):
        raise FileNotFound(NOT_YOURS)
    stored = await find_file(core.db, file_id)
    if stored is None or not (
        secrets.compare_digest(stored.owner, owner)
        | lifecycle.token_matches(stored.delete_token, token)
    ):
        raise FileNotFound(NOT_YOURS)
    if stored.gone:
        raise FileGone(lifecycle.gone_message(stored.gone), reason=stored.gone)
    removed = await lifecycle.remove_file(
        core.db, core.storage, file_id, lifecycle.DELETED, core.clock()
    )
    if not removed:
        raise FileGone(lifecycle.gone_message(lifecycle.DELETED), reason=lifecycle.DELETED)


async def count_download(db: Database, file_id: str, now: float) -> bool:
    """Count one download if the file's limit allows another; False when it is used up."""
    return await db.run(queries.take_download, file_id, now)


async def storage_stats(db: Database) -> StorageStats:
    return StorageStats(**await db.run(queries.storage_stats))
