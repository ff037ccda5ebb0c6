"""Shares (several files behind one link) and download passwords, as the web layer uses them.

Finding a share whose link still works, creating one, counting its downloads, and the password
hash kept for a file or a share. Hashing and checking passwords is `web/passwords.py`'s; the books
are `meta/shares.py`.
"""

from __future__ import annotations

import secrets

from pyfiledrop import lifecycle
from pyfiledrop.errors import FileGone, LinkNotFound, Missing
from pyfiledrop.files import PUBLIC_ID_FORM, served_file
from pyfiledrop.meta import Database, Share, StoredFile
from pyfiledrop.meta import shares as share_queries
from pyfiledrop.uploads import Uploads, public_token

SHARE_GONE = "none of the files of this link is still on the server"


async def served_share(
    core: Uploads, share_id: str, owner: str | None = None
) -> tuple[Share, list[StoredFile]]:
    """A share whose link works, with its files still served; 404 unknown, 410 gone."""
    if not PUBLIC_ID_FORM.match(share_id):
        raise LinkNotFound("no such link")
    share = await core.db.run(share_queries.get_share, share_id)
    if share is None or (owner is not None and not secrets.compare_digest(share.owner, owner)):
        raise LinkNotFound("no such link")
    now = core.clock()
    if share.expires is not None and share.expires <= now:
        raise FileGone(lifecycle.gone_message(lifecycle.EXPIRED), reason=lifecycle.EXPIRED)
    if share.max_downloads is not None and share.downloads >= share.max_downloads:
        raise FileGone(lifecycle.gone_message(lifecycle.USED_UP), reason=lifecycle.USED_UP)
    served = []
    for file_id in await core.db.run(share_queries.share_file_ids, share.id):
        try:
            # The share's own limit counts here, not each file's (a file's may be used up by
            # its own link); a file expired, deleted or missing is left out.
            served.append(await served_file(core, file_id, allow_used_up=True))
        except (Missing, FileGone):
            continue
    if not served:
        raise FileGone(SHARE_GONE, reason=lifecycle.MISSING)
    return share, served


async def count_share_download(db: Database, share_id: str) -> bool:
    """Count one download of the share, unless its limit is reached (then False)."""
    return await db.run(share_queries.take_share_download, share_id)


async def create_share(
    core: Uploads,
    owner: str,
    file_ids: list[str],
    options: lifecycle.FileOptions,
    password_hash: str | None,
) -> Share:
    """One new link for `file_ids` (checked to be the owner's by the caller), in their order.

    With a password, the files' own links get the same one: the share's would be no lock
    otherwise.
    """
    now = core.clock()
    share = Share(
        id=public_token(16),
        owner=owner,
        created=now,
        expires=lifecycle.expiry(core.settings, options.expires_in, now),
        max_downloads=options.max_downloads,
    )
    await core.db.run(share_queries.insert_share, share, file_ids)
    if password_hash is not None:
        await set_password_hash(core.db, [share.id, *file_ids], password_hash)
    return share


async def set_password_hash(db: Database, targets: list[str], password_hash: str) -> None:
    """Protect files or shares (by public id) with one password hash; replaces an earlier one."""
    await db.run(share_queries.set_password, targets, password_hash)


async def password_hash_of(db: Database, target: str) -> str | None:
    """The hash protecting a file or a share, None when it has no download password."""
    return await db.run(share_queries.password_of, target)
