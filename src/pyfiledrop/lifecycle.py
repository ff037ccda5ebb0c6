"""How long a published file is served: expiry, download limits, deletion, and tombstones.

A file stops being served when it expires, reaches its download limit, is deleted, or vanishes
from disk. Its row then stays for a while as a tombstone (`files.gone` says why), so its link
answers 410 with the reason instead of 404, and its name is not reused while links to it live.

Deleting unlinks only the file's own path: a deduplicated file is a hard link, and the other
links keep the bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from pyfiledrop.config import Settings
from pyfiledrop.errors import Invalid
from pyfiledrop.logs import ref
from pyfiledrop.meta import Database, StoredFile, queries
from pyfiledrop.storage import Storage
from pyfiledrop.units import MAX_DURATION_SECONDS, parse_duration

log = logging.getLogger("pyfiledrop")

EXPIRED = "expired"
DELETED = "deleted"
REMOVED = "removed"
MISSING = "missing"
USED_UP = "used_up"
GONE_MESSAGES = {
    EXPIRED: "this link has expired",
    DELETED: "this file was deleted by its uploader",
    REMOVED: "this file was removed by the server's operator",
    MISSING: "this file is no longer on the server",
    USED_UP: "this link has reached its download limit",
}
# After a counted download, requests that continue it (Range not from byte 0) are served without
# counting for this long, so a one-time link can still resume a cut download.
RESUME_WINDOW_SECONDS = 24 * 3600
TOMBSTONE_SECONDS = 30 * 86400
MAX_DOWNLOADS_LIMIT = 1_000_000
TOKEN_CHARS = 48  # hex: 192 bits, and never a leading "-" that a command line reads as a flag
SCAN_YIELD_EVERY = 500


@dataclass(frozen=True)
class FileOptions:
    """What the uploader may choose for a file: a shorter life, a download limit."""

    expires_in: int | None = None
    max_downloads: int | None = None


NO_OPTIONS = FileOptions()


def file_options(fields: Mapping[str, str]) -> FileOptions:
    """`expires_in` (a duration: 3600, 90m, 12h, 7d) and `max_downloads` (1 = one-time link)."""
    expires_in = None
    raw_life = (fields.get("expires_in") or "").strip()
    if raw_life:
        try:
            expires_in = parse_duration(raw_life)
        except ValueError:
            expires_in = 0
        if expires_in < 1:
            raise Invalid(
                "expires_in must be a duration such as 3600, 90m, 12h or 7d,"
                f" of at most {MAX_DURATION_SECONDS // 86400} days"
            )
    max_downloads = None
    raw_limit = (fields.get("max_downloads") or "").strip()
    if raw_limit:
        if not raw_limit.isascii() or not raw_limit.isdigit() or len(raw_limit) > 7:
            raise Invalid("max_downloads must be a positive integer")
        max_downloads = int(raw_limit)
        if not 1 <= max_downloads <= MAX_DOWNLOADS_LIMIT:
            raise Invalid(f"max_downloads must be from 1 to {MAX_DOWNLOADS_LIMIT}")
    return FileOptions(expires_in, max_downloads)


def expiry(settings: Settings, expires_in: int | None, now: float) -> float | None:
    """When a file published now expires: the uploader may only shorten the server's limit."""
    lives = [life for life in (settings.expire_after, expires_in) if life is not None]
    return now + min(lives) if lives else None


def why_gone(stored: StoredFile, now: float) -> str | None:
    """Why this file's link no longer works (a key of GONE_MESSAGES), or None while it does.

    A used-up file still serves the continuation of its last download; `downloads.py` decides that.
    """
    if stored.gone:
        return stored.gone
    if stored.expires is not None and stored.expires <= now:
        return EXPIRED
    if stored.max_downloads is not None and stored.downloads >= stored.max_downloads:
        return USED_UP
    return None


def gone_message(reason: str) -> str:
    return GONE_MESSAGES.get(reason, "this file is no longer available")


# --- delete tokens -------------------------------------------------------------------------


def delete_token(key: bytes, file_id: str) -> str:
    """The uploader's token for deleting one file, derived from the server's key and the id.

    Derived rather than random, so every answer that finishes an upload (the last chunk, the
    finish call, a retry of either, on any server process) can return the same token while the
    database keeps only its hash.
    """
    digest = hmac.new(key, b"delete-token:" + file_id.encode(), hashlib.sha256).digest()
    return digest.hex()[:TOKEN_CHARS]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(stored_hash: str | None, given: str | None) -> bool:
    if not stored_hash or not given:
        return False
    return hmac.compare_digest(token_hash(given), stored_hash)


async def server_key(db: Database) -> bytes:
    return bytes.fromhex(await db.run(queries.server_secret, "key"))


# --- removing ------------------------------------------------------------------------------


async def remove_file(
    db: Database, storage: Storage, file_id: str, reason: str, now: float
) -> bool:
    """Make the file a tombstone, then unlink its own path (never other links to its bytes).

    The tombstone comes first and only one caller wins it, so two removers can't race; a crash
    in between leaves bytes without a row, never a row pointing at someone else's bytes (the
    tombstone keeps its name reserved).
    """
    stored = await db.run(queries.get_file, file_id)
    if stored is None or not await db.run(queries.mark_gone, file_id, reason, now):
        return False
    if reason != MISSING:
        await storage.delete(stored.path)
    log.info("removed file %s %r: %s", ref(stored.id), stored.path, reason)
    return True


@dataclass(frozen=True)
class Removed:
    file: StoredFile
    reason: str


async def purge(db: Database, storage: Storage, now: float) -> list[Removed]:
    """One janitor pass over published files: expired, used up, or vanished from disk."""
    removed: list[Removed] = []
    for stored in await db.run(queries.expired_files, now):
        if await remove_file(db, storage, stored.id, EXPIRED, now):
            removed.append(Removed(stored, EXPIRED))
    for stored in await db.run(queries.used_up_files, now - RESUME_WINDOW_SECONDS):
        if await remove_file(db, storage, stored.id, USED_UP, now):
            removed.append(Removed(stored, USED_UP))
    for number, stored in enumerate(await db.run(queries.live_files)):
        if number % SCAN_YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a long scan must not hold the event loop
        if not await storage.exists(stored.path) and await remove_file(
            db, storage, stored.id, MISSING, now
        ):
            removed.append(Removed(stored, MISSING))
    await db.run(queries.prune_tombstones, now - TOMBSTONE_SECONDS)
    return removed


async def notice_missing(db: Database, storage: Storage, stored: StoredFile, now: float) -> bool:
    """True if the file is gone from disk behind the server's back (and now marked so)."""
    if await storage.exists(stored.path):
        return False
    await remove_file(db, storage, stored.id, MISSING, now)
    return True
