"""Serving published files by public id: Range, ETag, and a safe Content-Disposition."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from pyfiledrop import lifecycle
from pyfiledrop.errors import Forbidden, Gone, NotFound, RangeNotSatisfiable
from pyfiledrop.meta import StoredFile, queries
from pyfiledrop.uploads import Uploads

PUBLIC_ID_FORM = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# At most 20 digits each side: longer numbers are no real offset, and Python refuses to convert
# over ~4300 digits (a 500 and a traceback per request, before).
_RANGE_FORM = re.compile(r"^bytes=([0-9]{0,20})-([0-9]{0,20})$")


def content_disposition(name: str) -> str:
    """RFC 6266: an ASCII fallback plus the exact UTF-8 name; no quotes, CR or LF can escape."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One byte range as [start, end) or None for the whole file; several ranges: whole file."""
    if header is None:
        return None
    match = _RANGE_FORM.match(header.strip())
    if match is None:
        return None  # multiple or malformed ranges: RFC 9110 lets us ignore Range
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable("empty suffix range")
        return max(0, size - suffix), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise RangeNotSatisfiable(f"range starts beyond the file's {size} bytes")
    return start, end


async def find_file(
    uploads: Uploads, file_id: str, owner: str | None = None, allow_used_up: bool = False
) -> StoredFile:
    """A served file: 404 if unknown (or not `owner`'s), 410 with the reason if no longer served.

    A file removed from disk behind the server's back is noticed here and marked gone.
    """
    if not PUBLIC_ID_FORM.match(file_id):
        raise NotFound("no such file")
    stored = await uploads.db.run(queries.get_file, file_id)
    if stored is None or (owner is not None and not secrets.compare_digest(stored.owner, owner)):
        raise NotFound("no such file")
    now = uploads.clock()
    reason = lifecycle.why_gone(stored, now)
    if reason is None or (reason == lifecycle.USED_UP and allow_used_up):
        if not await lifecycle.notice_missing(uploads.db, uploads.storage, stored, now):
            return stored
        reason = lifecycle.MISSING
    raise Gone(lifecycle.gone_message(reason), reason=reason)


async def admit_download(uploads: Uploads, stored: StoredFile, start: int, head: bool) -> None:
    """Count a download that starts at byte 0; enforce the file's download limit.

    For a limited file, a request that starts later continues the last counted download (for
    RESUME_WINDOW_SECONDS) without counting; with no recent download it counts as a new one, so
    Range requests can't get around the limit.
    """
    now = uploads.clock()
    if stored.max_downloads is None:
        if start == 0 and not head:
            await uploads.db.run(queries.take_download, stored.id, now)
        return
    recent = stored.last_download is not None and (
        stored.last_download >= now - lifecycle.RESUME_WINDOW_SECONDS
    )
    if start > 0 and recent:
        return
    used_up = stored.downloads >= stored.max_downloads
    if (head and used_up) or (
        not head and not await uploads.db.run(queries.take_download, stored.id, now)
    ):
        raise Gone(lifecycle.gone_message(lifecycle.USED_UP), reason=lifecycle.USED_UP)


async def download(request: Request, uploads: Uploads, file_id: str) -> Response:
    if not uploads.settings.allow_downloads:
        raise Forbidden("downloads are disabled on this server")
    stored = await find_file(uploads, file_id, allow_used_up=True)
    etag = f'"{stored.sha256}"'
    headers = {
        "Content-Disposition": content_disposition(stored.name),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Checksum-SHA256": stored.sha256,
        "Cache-Control": "private, no-transform",
    }
    if_range = request.headers.get("if-range")
    wanted = request.headers.get("range") if if_range in (None, etag) else None
    try:
        byte_range = parse_range(wanted, stored.size)
    except RangeNotSatisfiable:
        return Response(
            status_code=416,
            headers={**headers, "Content-Range": f"bytes */{stored.size}"},
        )
    start, end = byte_range or (0, stored.size)
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    await admit_download(uploads, stored, start, request.method == "HEAD")
    presign = getattr(uploads.storage, "presigned_url", None)
    if presign is not None and uploads.settings.s3_presign and request.method == "GET":
        # The object store serves the bytes (and Range) itself; the link expires.
        url = presign(stored.path, headers["Content-Disposition"])
        return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    body = await _opened(uploads, stored, start, end)
    return StreamingResponse(
        body, status_code=status, headers=headers, media_type="application/octet-stream"
    )


async def _opened(
    uploads: Uploads, stored: StoredFile, start: int, end: int
) -> AsyncIterator[bytes]:
    """The body with its file already open (and its first piece read) before any header goes
    out: a delete racing the download is a clean 410 before it starts, and can't cut off one
    that has started (an open file stays readable after its unlink)."""
    pieces = uploads.storage.open_range(stored.path, start, end)
    try:
        first = await anext(pieces, b"")
    except FileNotFoundError:
        await lifecycle.notice_missing(uploads.db, uploads.storage, stored, uploads.clock())
        raise Gone(lifecycle.gone_message(lifecycle.MISSING), reason=lifecycle.MISSING) from None

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for piece in pieces:
                yield piece
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]

    return body()
