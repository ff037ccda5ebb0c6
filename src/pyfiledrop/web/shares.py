"""What recipients see: the page at a shared link, shares of several files, download passwords.

`/f/<id>` is the page people share for one file; `/download/<id>` stays the raw bytes (for curl
and the CLI). `/s/<id>` lists the files of one drop, each downloadable, plus "download all" as a
zip built on the fly (zipstream-ng: stored, not compressed, no temp file, no Range). Expiry and
the download limit of a share count for the share. Every client string is escaped here; the
pages need no script and no cookie (an unlocked page's links carry a short-lived key instead).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlencode

import anyio.from_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from zipstream import ZIP_STORED, ZipStream

from pyfiledrop import __version__, lifecycle, sharing
from pyfiledrop.config import Settings
from pyfiledrop.errors import FileGone, FileNotFound, Invalid, NotPermitted, PyfiledropError
from pyfiledrop.files import served_file
from pyfiledrop.meta import Share, StoredFile
from pyfiledrop.units import format_size
from pyfiledrop.uploads import Uploads
from pyfiledrop.web import downloads, error_pages, passwords
from pyfiledrop.web import errors as web_errors
from pyfiledrop.web.records import file_record

TEMPLATE_PATH = Path(__file__).parent / "templates" / "recipient.html"
FILE_PAGE = "/f/"
SHARE_PAGE = "/s/"
MAX_SHARE_FILES = 1000
MAX_API_BODY_BYTES = 256 * 1024
MAX_FORM_BODY_BYTES = 8192
DOWNLOADS_OFF = "downloads are disabled on this server"
# Downloads left and expiry change: never cache. `same-origin` referrers (not the app's usual
# `no-referrer`) so that the password form's POST carries our Origin, not "null", which the
# owner middleware refuses as cross-site.
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


def public_base(request: Request, settings: Settings) -> str:
    """The origin (and prefix) people reach us at: `public_url` when set, else as asked."""
    if settings.public_url:
        return settings.public_url
    return str(request.base_url).rstrip("/")


def page_link(request: Request, settings: Settings, file_id: str) -> str:
    return f"{public_base(request, settings)}{FILE_PAGE}{file_id}"


def download_link(request: Request, settings: Settings, file_id: str) -> str:
    return f"{public_base(request, settings)}/download/{file_id}"


def iso_time(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(moment))


def _fact(label: str, value: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f"<dt>{html.escape(label)}</dt><dd{klass}>{html.escape(value)}</dd>"


def downloads_left(stored: StoredFile) -> str:
    if stored.max_downloads is None:
        return "no limit"
    left = max(0, stored.max_downloads - stored.downloads)
    return f"{left} of {stored.max_downloads}"


def file_facts(stored: StoredFile) -> str:
    return "".join(
        [
            _fact("Size", f"{format_size(stored.size)} ({stored.size:,} bytes)"),
            _fact("SHA-256", stored.sha256, "hash"),
            _fact("Uploaded", _when(stored.created)),
            _fact("Expires", _when(stored.expires) if stored.expires is not None else "never"),
            _fact("Downloads left", downloads_left(stored)),
        ]
    )


def render(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = Template(TEMPLATE_PATH.read_text(encoding="utf-8")).substitute(
        title=html.escape(title), body=body, version=html.escape(__version__)
    )
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


def with_key(path: str, key: str | None) -> str:
    return f"{path}?{urlencode({'key': key})}" if key else path


def file_page_body(stored: StoredFile, key: str | None = None) -> str:
    name = html.escape(stored.name)
    href = html.escape(with_key(f"/download/{stored.id}", key))
    return (
        f'<h1 class="recipient-name">{name}</h1>'
        f'<dl class="facts">{file_facts(stored)}</dl>'
        f'<p><a class="button primary" id="download" href="{href}" download>Download</a></p>'
    )


def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.uploads
    return uploads


def password_form(action: str, message: str | None = None, status: int = 200) -> HTMLResponse:
    """Nothing about the file until the password is right: its name may be the secret."""
    notice = (
        f'<p role="alert" class="error"><strong>{html.escape(message)}</strong></p>'
        if message
        else ""
    )
    body = (
        "<h1>This link is protected</h1>"
        "<p>Its uploader set a download password. Type it to see the files.</p>"
        f"{notice}"
        f'<form class="password-form" method="post" action="{html.escape(action)}">'
        '<label for="password">Download password</label> '
        '<input id="password" name="password" type="password" autocomplete="off" required'
        " autofocus> "
        '<button type="submit" class="primary">Open</button></form>'
    )
    return render("Protected link", body, status)


async def form_password(request: Request) -> str | None:
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_FORM_BODY_BYTES:
        raise Invalid("the form is too large")
    form = await request.form()
    value = form.get("password")
    return value if isinstance(value, str) else None


async def unlock(request: Request, uploads: Uploads, target: str) -> str | Response | None:
    """The key for a protected target's links, or the form (again) to answer with.

    None: the target has no password. GET with a valid key keeps it; POST checks the password.
    """
    if not await passwords.is_protected(uploads, target):
        return None
    action = request.url.path
    if request.method == "POST":
        given = await form_password(request)
        try:
            right = given is not None and await passwords.check_password(
                request, uploads, target, given
            )
        except passwords.TooMany as error:
            return password_form(action, f"{error}.".capitalize(), 429)
        if not right:
            return password_form(action, "Wrong password.", 401)
        return await passwords.make_key(uploads, target)
    key = request.query_params.get("key")
    if await passwords.key_valid(uploads, target, key):
        assert key is not None
        return key
    return password_form(action)


async def file_page(request: Request) -> Response:
    uploads = _uploads(request)
    try:
        if not uploads.settings.allow_downloads:
            raise NotPermitted(DOWNLOADS_OFF)
        stored = await served_file(uploads, request.path_params["file_id"])
        key = await unlock(request, uploads, stored.id)
    except PyfiledropError as error:
        return page_error(error)
    if isinstance(key, Response):
        return key
    return render(stored.name, file_page_body(stored, key))


# --- shares: several files behind one link ---------------------------------------------------


def share_left(share: Share) -> str:
    if share.max_downloads is None:
        return "no limit"
    return f"{max(0, share.max_downloads - share.downloads)} of {share.max_downloads}"


def share_page_body(share: Share, files: list[StoredFile], key: str | None) -> str:
    total = sum(stored.size for stored in files)
    items = []
    for stored in files:
        href = html.escape(with_key(f"{SHARE_PAGE}{share.id}/file/{stored.id}", key))
        items.append(
            '<li class="share-file">'
            f'<div class="file-head"><a class="file-name" href="{href}" download>'
            f"{html.escape(stored.name)}</a>"
            f'<span class="file-size">{html.escape(format_size(stored.size))}</span></div>'
            f'<div class="file-hash"><span class="label">SHA-256 </span>'
            f'<code class="hash">{html.escape(stored.sha256)}</code></div></li>'
        )
    facts = "".join(
        [
            _fact("Files", f"{len(files)}, {format_size(total)} in all"),
            _fact("Uploaded", _when(share.created)),
            _fact("Expires", _when(share.expires) if share.expires is not None else "never"),
            _fact("Downloads left", share_left(share)),
        ]
    )
    zip_href = html.escape(with_key(f"{SHARE_PAGE}{share.id}/zip", key))
    return (
        f"<h1>{len(files)} shared file{'s' if len(files) != 1 else ''}</h1>"
        f'<dl class="facts">{facts}</dl>'
        f'<ul class="share-files">{"".join(items)}</ul>'
        f'<p><a class="button primary" id="download-all" href="{zip_href}" download>'
        "Download all (.zip)</a></p>"
        '<p class="muted">Each file, and the zip, counts as one download of this link.</p>'
    )


async def share_page(request: Request) -> Response:
    uploads = _uploads(request)
    try:
        if not uploads.settings.allow_downloads:
            raise NotPermitted(DOWNLOADS_OFF)
        share, files = await sharing.served_share(uploads, request.path_params["share_id"])
        key = await unlock(request, uploads, share.id)
    except PyfiledropError as error:
        return page_error(error)
    if isinstance(key, Response):
        return key
    return render("Shared files", share_page_body(share, files, key))


async def share_access(request: Request) -> tuple[Uploads, Share, list[StoredFile]]:
    """For the share's downloads: a working link, its key if protected, one download counted."""
    uploads = _uploads(request)
    if not uploads.settings.allow_downloads:
        raise NotPermitted(DOWNLOADS_OFF)
    share, files = await sharing.served_share(uploads, request.path_params["share_id"])
    await passwords.require_access(request, uploads, share.id)
    if request.method != "HEAD" and not await sharing.count_share_download(uploads.db, share.id):
        raise FileGone(lifecycle.gone_message(lifecycle.USED_UP), reason=lifecycle.USED_UP)
    return uploads, share, files


async def share_file(request: Request) -> Response:
    try:
        uploads, _, files = await share_access(request)
        wanted = request.path_params["file_id"]
        found = [stored for stored in files if secrets.compare_digest(stored.id, wanted)]
        if not found:
            raise FileNotFound("no such file in this link")
    except PyfiledropError as error:
        return page_error(error)
    stored = found[0]
    headers = {
        "Content-Disposition": downloads.content_disposition(stored.name),
        "Content-Length": str(stored.size),
        "X-Checksum-SHA256": stored.sha256,
        "Cache-Control": "private, no-store",
    }
    body = (
        None
        if request.method == "HEAD"
        else uploads.storage.open_range(stored.path, 0, stored.size)
    )
    if body is None:
        return Response(headers=headers, media_type="application/octet-stream")
    return StreamingResponse(body, headers=headers, media_type="application/octet-stream")


def _pulled(pieces: AsyncIterator[bytes]) -> Iterator[bytes]:
    """An async byte stream read from the worker thread that runs the (synchronous) zip writer."""

    async def next_piece() -> bytes | None:
        try:
            return await anext(pieces)
        except StopAsyncIteration:
            return None

    while (piece := anyio.from_thread.run(next_piece)) is not None:
        yield piece


def zip_of(uploads: Uploads, files: list[StoredFile]) -> ZipStream:
    """Entries stored as they are (files people share are mostly compressed already), sized so
    the answer has a Content-Length; each file is read only when its turn comes."""
    archive = ZipStream(compress_type=ZIP_STORED, sized=True)
    taken: set[str] = set()
    for stored in files:
        name = stored.name
        stem, dot, ext = name.rpartition(".")
        number = 1
        while name.lower() in taken:
            name = f"{stem} ({number}).{ext}" if dot and stem else f"{stored.name} ({number})"
            number += 1
        taken.add(name.lower())
        archive.add(_pulled(uploads.storage.open_range(stored.path, 0, stored.size)), name,
                    size=stored.size)  # fmt: skip
    return archive


async def share_zip(request: Request) -> Response:
    try:
        uploads, share, files = await share_access(request)
    except PyfiledropError as error:
        return page_error(error)
    archive = zip_of(uploads, files)
    headers = {
        "Content-Disposition": downloads.content_disposition(f"pyfiledrop-{share.id[:8]}.zip"),
        "Content-Length": str(len(archive)),
        "Cache-Control": "private, no-store",
    }
    if request.method == "HEAD":
        return Response(headers=headers, media_type="application/zip")
    # A synchronous iterator: Starlette runs it in a worker thread, so the loop stays free.
    return StreamingResponse(iter(archive), headers=headers, media_type="application/zip")


# --- the uploader's API ----------------------------------------------------------------------


def _owner(request: Request) -> str:
    owner: str = request.scope["state"]["owner"]
    return owner


async def json_body(request: Request) -> dict[str, Any]:
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_API_BODY_BYTES:
        raise Invalid(f"send a JSON object of at most {MAX_API_BODY_BYTES} bytes")
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise Invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise Invalid("send a JSON object")
    return body


async def create_share(request: Request) -> Response:
    """`{"files": [ids], "expires_in": "1d", "max_downloads": 5, "password": "..."}`: one link
    for the caller's own files."""
    uploads = _uploads(request)
    owner = _owner(request)
    body = await json_body(request)
    file_ids = body.get("files")
    if (
        not isinstance(file_ids, list)
        or not 1 <= len(file_ids) <= MAX_SHARE_FILES
        or not all(isinstance(file_id, str) for file_id in file_ids)
    ):
        raise Invalid(f"files must be a list of 1 to {MAX_SHARE_FILES} file ids")
    file_ids = list(dict.fromkeys(file_ids))
    options = lifecycle.file_options(
        {name: str(body[name]) for name in ("expires_in", "max_downloads") if body.get(name)}
    )
    password = body.get("password")
    secret = await passwords.hash_password(passwords.valid_password(password)) if password else None
    chosen = [await served_file(uploads, file_id, owner=owner) for file_id in file_ids]
    if secret is None:
        for stored in chosen:
            if await passwords.is_protected(uploads, stored.id):
                # The share would be a way around the file's password.
                raise Invalid(f"{stored.name} has a download password: give the share one")
    share = await sharing.create_share(uploads, owner, file_ids, options, secret)
    base = public_base(request, uploads.settings)
    return JSONResponse(
        {
            "id": share.id,
            "page_url": f"{base}{SHARE_PAGE}{share.id}",
            "zip_url": f"{base}{SHARE_PAGE}{share.id}/zip",
            "expires": None if share.expires is None else iso_time(share.expires),
            "max_downloads": share.max_downloads,
            "password": secret is not None,
            "files": [file_record(stored) for stored in chosen],
        },
        status_code=201,
    )


async def protect(uploads: Uploads, file_id: str, password: str) -> None:
    secret = await passwords.hash_password(passwords.valid_password(password))
    await sharing.set_password_hash(uploads.db, [file_id], secret)


async def set_file_password(request: Request) -> Response:
    """`{"password": "..."}`: the caller's own file asks for it from now on."""
    uploads = _uploads(request)
    stored = await served_file(uploads, request.path_params["file_id"], owner=_owner(request))
    body = await json_body(request)
    password = body.get("password")
    await protect(uploads, stored.id, passwords.valid_password(password))
    return JSONResponse({"status": "protected", "id": stored.id})


def page_error(error: PyfiledropError) -> Response:
    """The same small page a browser gets for a dead /download/ link, whatever it Accepts."""
    page = error_pages.error_page(web_errors.status_of(error), error.message)
    page.headers.update(PAGE_HEADERS)
    return page


def routes() -> list[BaseRoute]:
    return [
        Route(FILE_PAGE + "{file_id}", file_page, methods=["GET", "HEAD", "POST"]),
        Route(SHARE_PAGE + "{share_id}", share_page, methods=["GET", "HEAD", "POST"]),
        Route(SHARE_PAGE + "{share_id}/zip", share_zip, methods=["GET", "HEAD"]),
        Route(SHARE_PAGE + "{share_id}/file/{file_id}", share_file, methods=["GET", "HEAD"]),
        Route("/api/shares", create_share, methods=["POST"]),
        Route("/api/files/{file_id}/password", set_file_password, methods=["POST"]),
    ]
