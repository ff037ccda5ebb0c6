"""Managing one's own files: delete by the owner cookie or the delete token, the file list."""

from __future__ import annotations

import html
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from pyfiledrop import lifecycle
from pyfiledrop.errors import Gone, NotFound
from pyfiledrop.meta import StoredFile, queries
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.downloads import PUBLIC_ID_FORM

NOT_YOURS = "no such file, or not yours to delete"


async def delete(uploads: Uploads, file_id: str, owner: str, token: str | None) -> dict[str, Any]:
    """Delete for its owner or the holder of its delete token; anyone else learns nothing."""
    if not PUBLIC_ID_FORM.match(file_id):
        raise NotFound(NOT_YOURS)
    stored = await uploads.db.run(queries.get_file, file_id)
    if stored is None or not (
        secrets.compare_digest(stored.owner, owner)
        | lifecycle.token_matches(stored.delete_token, token)
    ):
        raise NotFound(NOT_YOURS)
    if stored.gone:
        raise Gone(lifecycle.gone_message(stored.gone), reason=stored.gone)
    removed = await lifecycle.remove_file(
        uploads.db, uploads.storage, file_id, lifecycle.DELETED, uploads.clock()
    )
    if not removed:
        raise Gone(lifecycle.gone_message(lifecycle.DELETED), reason=lifecycle.DELETED)
    return {"status": "deleted", "id": file_id}


async def served_files(uploads: Uploads, owner: str) -> list[StoredFile]:
    """The owner's files whose links work now: not expired, not used up, and really on disk."""
    now = uploads.clock()
    served = []
    for stored in await uploads.db.run(queries.files_of_owner, owner):
        if lifecycle.why_gone(stored, now) is None and not await lifecycle.notice_missing(
            uploads.db, uploads.storage, stored, now
        ):
            served.append(stored)
    return served


def wants_html(request: Request) -> bool:
    """A browser following a download link (not a script): it gets a page instead of JSON."""
    return (
        request.method in ("GET", "HEAD")
        and request.url.path.startswith("/download/")
        and "text/html" in request.headers.get("accept", "")
    )


def error_page(status: int, message: str) -> HTMLResponse:
    """A small page for a link that no longer works; plain HTML, nothing the CSP would block."""
    title = (
        "Link no longer available"
        if status == 410
        else "Not found"
        if status == 404
        else "Not available"
    )
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{title} - pyfiledrop</title></head><body>"
        f"<h1>{title}</h1><p>{html.escape(message)}.</p>"
        '<p><a href="/">pyfiledrop</a></p></body></html>'
    )
    return HTMLResponse(body, status_code=status)
