"""Serving published files by public id: Range, ETag, and a safe Content-Disposition."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from pyfiledrop import files, lifecycle
from pyfiledrop.errors import BadRange, FileGone, NotPermitted
from pyfiledrop.logs import ref
from pyfiledrop.meta import StoredFile
from pyfiledrop.uploads import Uploads
from pyfiledrop.web import passwords
from pyfiledrop.web.watch import client_address

log = logging.getLogger("pyfiledrop")

# A limited file's counted download hands out a token; resuming it needs the token back.
RESUME_COOKIE = "pfd_resume"
RESUME_HEADER = "X-Resume-Token"
RESUME_TOKEN_CHARS = 32
RESUMABLE_DOWNLOADS = 16
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
            raise BadRange("empty suffix range")
        return max(0, size - suffix), size
    start = int(first)
    end = size if last == "" else min(size, int(last) + 1)
    if start >= size or end <= start:
        raise BadRange(f"range starts beyond the file's {size} bytes")
    return start, end


async def admit_download(
    uploads: Uploads, stored: StoredFile, start: int, head: bool, resume: str | None = None
) -> str | None:
    """Count a download that starts at byte 0; enforce the file's download limit.

    For a limited file, a request that starts later continues the last counted download (for
    RESUME_WINDOW_SECONDS) without counting, but only with the resume token handed out with that
    download (`resume`): a stranger's `Range: bytes=1-` after the last download is a new download,
    so a used-up one-time link serves nothing more. Returns the token for a counted download of a
    limited file.
    """
    now = uploads.clock()
    if stored.max_downloads is None:
        if start == 0 and not head:
            await files.count_download(uploads.db, stored.id, now)
        return None
    recent = stored.last_download is not None and (
        stored.last_download >= now - lifecycle.RESUME_WINDOW_SECONDS
    )
    if start > 0 and recent and await _may_resume(uploads, stored, resume):
        return None
    used_up = stored.downloads >= stored.max_downloads
    if head and not used_up:
        return None
    if head or not await files.count_download(uploads.db, stored.id, now):
        raise FileGone(lifecycle.gone_message(lifecycle.USED_UP), reason=lifecycle.USED_UP)
    return await _resume_token(uploads, stored.id, stored.downloads + 1)


async def _resume_token(uploads: Uploads, file_id: str, number: int) -> str:
    """Derived from the server's key, the file and the download's number: any server process can
    check it, and nothing needs storing."""
    message = f"resume:{file_id}:{number}".encode()
    return hmac.new(await uploads.key(), message, hashlib.sha256).hexdigest()[:RESUME_TOKEN_CHARS]


async def _may_resume(uploads: Uploads, stored: StoredFile, offered: str | None) -> bool:
    if not offered:
        return False
    # Concurrent downloads may each have seen the same count: accept the last few numbers.
    lowest = max(0, stored.downloads - RESUMABLE_DOWNLOADS)
    for number in range(stored.downloads, lowest, -1):
        if hmac.compare_digest(await _resume_token(uploads, stored.id, number), offered):
            return True
    return False


def _offered_resume(request: Request) -> str | None:
    return request.headers.get(RESUME_HEADER) or request.cookies.get(RESUME_COOKIE)


def _hand_out_resume(response: Response, request: Request, file_id: str, token: str) -> None:
    """The browser sends the cookie back when it resumes; other clients echo the header."""
    response.headers[RESUME_HEADER] = token
    response.set_cookie(
        RESUME_COOKIE,
        token,
        max_age=lifecycle.RESUME_WINDOW_SECONDS,
        path=f"/download/{file_id}",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )


async def download(request: Request, uploads: Uploads, file_id: str) -> Response:
    if not uploads.settings.allow_downloads:
        raise NotPermitted("downloads are disabled on this server")
    stored = await files.served_file(uploads, file_id, allow_used_up=True)
    await passwords.require_access(request, uploads, stored.id)  # a download password, if set
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
    except BadRange:
        return Response(
            status_code=416,
            headers={**headers, "Content-Range": f"bytes */{stored.size}"},
        )
    start, end = byte_range or (0, stored.size)
    status = 200
    if byte_range is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{stored.size}"
    token = await admit_download(
        uploads, stored, start, request.method == "HEAD", resume=_offered_resume(request)
    )
    if request.method == "GET":
        log.info(
            "download of file %s %r, bytes %d-%d of %d, by %s",
            ref(stored.id), stored.name, start, end, stored.size, client_address(request.scope),
        )  # fmt: skip
    response: Response
    presign = uploads.caps.presigned_urls
    if presign is not None and uploads.settings.s3_presign and request.method == "GET":
        # The object store serves the bytes (and Range) itself; the link expires.
        url = presign.presigned_url(stored.path, headers["Content-Disposition"])
        response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    else:
        headers["Content-Length"] = str(end - start)
        if request.method == "HEAD":
            response = Response(
                status_code=status, headers=headers, media_type="application/octet-stream"
            )
        else:
            body = await _opened(uploads, stored, start, end)
            response = StreamingResponse(
                body, status_code=status, headers=headers, media_type="application/octet-stream"
            )
    if token is not None:
        _hand_out_resume(response, request, stored.id, token)
    return response


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
        raise FileGone(
            lifecycle.gone_message(lifecycle.MISSING), reason=lifecycle.MISSING
        ) from None

    async def body() -> AsyncIterator[bytes]:
        try:
            if first:
                yield first
            async for piece in pieces:
                yield piece
        finally:
            await pieces.aclose()  # type: ignore[attr-defined]

    return body()
