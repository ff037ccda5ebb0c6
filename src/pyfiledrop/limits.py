"""Caps on uploads in progress, per owner and per client address (429 with Retry-After).

The owner is a cookie a client can drop at will, so the address is the cap that holds; behind a
proxy the address is the client's from `X-Forwarded-For` when the peer is a trusted proxy
(`trusted_proxies`, web/proxy.py).
The web layer sets `client_address` for each request; the core reads it where an upload is
admitted and stores it on the upload's row.
"""

from __future__ import annotations

from contextvars import ContextVar

from pyfiledrop.config import Settings
from pyfiledrop.errors import TooManyUploads
from pyfiledrop.meta import Database, queries

client_address: ContextVar[str | None] = ContextVar("client_address", default=None)


async def admit(settings: Settings, db: Database, owner: str) -> None:
    """Refuse a new upload past the owner's or the address's number of uploads in progress."""
    # No cookie, no owner (a cookie-less script's uploads share the empty one): the address cap
    # holds for those.
    if settings.uploads_per_owner and owner:
        count = await db.run(queries.uploads_in_progress, "owner", owner)
        if count >= settings.uploads_per_owner:
            raise TooManyUploads(
                f"{count} uploads of yours are in progress; finish or wait for some"
                f" (at most {settings.uploads_per_owner})"
            )
    address = client_address.get()
    if settings.uploads_per_address and address is not None:
        count = await db.run(queries.uploads_in_progress, "address", address)
        if count >= settings.uploads_per_address:
            raise TooManyUploads(
                f"{count} uploads from your address are in progress"
                f" (at most {settings.uploads_per_address})"
            )
