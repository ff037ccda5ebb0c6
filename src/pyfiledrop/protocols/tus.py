"""tus 1.0.0 at `/files/`: the core protocol and the extensions creation, creation-with-upload,
creation-defer-length, expiration, checksum, termination and concatenation.

HTTP in, calls to `tus_uploads` (tus's rules) and the core out; bodies are read as every body is
(`body_pieces`, `ChunkFeeder`). The upload URL is the capability: whoever holds it may ask its
offset, write to it and terminate it (tus clients keep no cookies); the owner cookie sent with the
creating POST decides whose list the finished file joins.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import email.utils
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from pyfiledrop import tus_uploads
from pyfiledrop.errors import (
    Interrupted,
    Invalid,
    PyfiledropError,
    TooLarge,
    TooSlow,
    UnsupportedVersion,
    WrongContentType,
)
from pyfiledrop.meta import Upload
from pyfiledrop.protocols.body import ChunkFeeder, body_pieces, declared_length, idle_timeout
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.errors import ErrorStyle, use_style
from pyfiledrop.web.records import uploader_record

TUS_VERSION = "1.0.0"
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "termination",
    "concatenation",
)
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_BYTES = 16 * 1024
MAX_CONCAT_PARTS = 1000
FILE_HEADER = "X-Pyfiledrop-File"
SHA256_HEADER = "X-Pyfiledrop-Sha256"
DELETE_TOKEN_HEADER = "X-Pyfiledrop-Delete-Token"  # for DELETE /api/files/<id> (X-Delete-Token)
# What a browser may read from a cross-origin tus response (see web/owner.py).
EXPOSED_HEADERS = (
    "Location",
    "Tus-Resumable",
    "Tus-Version",
    "Tus-Extension",
    "Tus-Max-Size",
    "Tus-Checksum-Algorithm",
    "Upload-Offset",
    "Upload-Length",
    "Upload-Defer-Length",
    "Upload-Metadata",
    "Upload-Concat",
    "Upload-Expires",
    FILE_HEADER,
    SHA256_HEADER,
    DELETE_TOKEN_HEADER,
)
_DIGEST_SIZES = {"sha1": 20, "sha256": 32, "md5": 16}
_MEDIA_TYPE = re.compile(r"^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}$")
_PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")

Headers = dict[str, str]
Piece = bytes | bytearray


def routes() -> list[BaseRoute]:
    methods = ["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]
    return [
        Route("/files", _handled(collection), methods=["POST", "OPTIONS"]),
        Route("/files/", _handled(collection), methods=["POST", "OPTIONS"]),
        Route("/files/{upload_id}", _handled(resource), methods=methods),
    ]


def _handled(
    endpoint: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        use_style(request, ERROR_STYLE)
        return await endpoint(request)

    return handle


def _error_headers(request: Request, error: PyfiledropError, status: int, headers: Headers) -> None:
    """tus errors carry `Tus-Resumable` (and `Tus-Version` on 412), and the upload's offset when
    the client's was wrong, besides the usual JSON."""
    headers.update(_base_headers())
    if status == 412:
        headers["Tus-Version"] = TUS_VERSION
    if "offset" in error.extra:
        headers["Upload-Offset"] = str(error.extra["offset"])
    if _method(request) in ("POST", "PATCH"):
        headers["Connection"] = "close"  # the body was not (all) read
    else:
        headers.pop("Connection", None)


# The core's names for the fields tus sends as headers.
ERROR_STYLE = ErrorStyle(
    names={"offset": "Upload-Offset", "length": "Upload-Length", "concat": "Upload-Concat"},
    headers=_error_headers,
)


def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.uploads
    return uploads


def _method(request: Request) -> str:
    override = request.headers.get("x-http-method-override")
    return override.strip().upper() if override else request.method


def _base_headers() -> Headers:
    return {"Tus-Resumable": TUS_VERSION, "Cache-Control": "no-store"}


def _check_version(request: Request) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise UnsupportedVersion(f"this server speaks tus {TUS_VERSION} (Tus-Resumable)")


def _options(request: Request) -> Response:
    headers = _base_headers()
    headers.update(
        {
            "Tus-Version": TUS_VERSION,
            "Tus-Extension": ",".join(EXTENSIONS),
            "Tus-Max-Size": str(_uploads(request).settings.max_size_bytes),
            "Tus-Checksum-Algorithm": ",".join(tus_uploads.CHECKSUM_ALGORITHMS),
        }
    )
    return Response(status_code=204, headers=headers)


# --- /files/ -----------------------------------------------------------------------------------


async def collection(request: Request) -> Response:
    tus_uploads.check_available(_uploads(request))
    method = _method(request)
    if method == "OPTIONS":
        return _options(request)
    if method != "POST":
        raise Invalid(f"{method} is not allowed on the creation URL")
    _check_version(request)
    return await create(request)


async def create(request: Request) -> Response:
    uploads = _uploads(request)
    owner: str = request.scope["state"]["owner"]
    metadata_header = request.headers.get("upload-metadata", "").strip() or None
    fields = parse_metadata(metadata_header)
    concat = request.headers.get("upload-concat")
    new = tus_uploads.NewUpload(
        owner=owner,
        size=None,
        filename=_text(fields.get("filename") or fields.get("name")),
        content_type=_media_type(fields.get("filetype") or fields.get("type")),
        metadata=metadata_header,
        concat=concat.strip() if concat else None,
    )
    if new.concat is not None and new.concat.startswith("final"):
        if "upload-length" in request.headers:
            raise Invalid("a final upload takes no Upload-Length")
        upload = await tus_uploads.join(uploads, owner, _partial_ids(new.concat), new)
        return await _created(request, uploads, upload)
    if new.concat not in (None, tus_uploads.PARTIAL):
        raise Invalid("Upload-Concat must be `partial` or `final;<urls>`")
    size = _creation_length(request)
    with_body = _has_body(request)
    if with_body and _content_type(request) != OFFSET_CONTENT_TYPE:
        raise WrongContentType(f"an upload's bytes come as {OFFSET_CONTENT_TYPE}")
    upload = await tus_uploads.create(uploads, dataclasses.replace(new, size=size))
    if with_body:
        upload = await _write(request, uploads, upload.id, 0)
    return await _created(request, uploads, upload)


async def _created(request: Request, uploads: Uploads, upload: Upload) -> Response:
    headers = await _state_headers(uploads, upload)
    # `public_url`, when set, rather than the request's Host (DNS rebinding, proxies).
    base = uploads.settings.public_url or str(request.base_url).rstrip("/")
    headers["Location"] = f"{base}/files/{upload.id}"
    return Response(status_code=201, headers=headers)


def _creation_length(request: Request) -> int | None:
    length = request.headers.get("upload-length")
    deferred = request.headers.get("upload-defer-length")
    if deferred is not None:
        if deferred.strip() != "1":
            raise Invalid("Upload-Defer-Length must be 1")
        if length is not None:
            raise Invalid("send Upload-Length or Upload-Defer-Length, not both")
        return None
    if length is None:
        raise Invalid("Upload-Length (or Upload-Defer-Length: 1) is required")
    return _non_negative(length, "Upload-Length")


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _has_body(request: Request) -> bool:
    length = declared_length(request)
    return bool(length) or "chunked" in request.headers.get("transfer-encoding", "").lower()


def _partial_ids(concat: str) -> list[str]:
    kind, _, urls = concat.partition(";")
    if kind.strip() != "final":
        raise Invalid("Upload-Concat must be `partial` or `final;<urls>`")
    try:
        ids = [urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] for url in urls.split()]
    except ValueError:  # e.g. `http://[::1/files/x`: an unclosed IPv6 host
        raise Invalid("Upload-Concat: final holds a malformed URL") from None
    if not ids or len(ids) > MAX_CONCAT_PARTS:
        raise Invalid(f"Upload-Concat: final needs 1 to {MAX_CONCAT_PARTS} partial uploads")
    return ids


# --- /files/<id> -------------------------------------------------------------------------------


async def resource(request: Request) -> Response:
    method = _method(request)
    upload_id = request.path_params["upload_id"]
    uploads = _uploads(request)
    tus_uploads.check_available(uploads)
    if method == "OPTIONS":
        return _options(request)
    if method == "GET":
        return await _state_answer(uploads, upload_id)
    _check_version(request)
    if method == "HEAD":
        upload = await tus_uploads.settle(uploads, await tus_uploads.find(uploads, upload_id))
        headers = await _state_headers(uploads, upload)
        return Response(status_code=200, headers=headers)
    if method == "PATCH":
        return await patch(request, uploads, upload_id)
    if method == "DELETE":
        await tus_uploads.terminate(uploads, upload_id)
        return Response(status_code=204, headers=_base_headers())
    raise Invalid(f"{method} is not allowed on an upload URL")


async def patch(request: Request, uploads: Uploads, upload_id: str) -> Response:
    if _content_type(request) != OFFSET_CONTENT_TYPE:
        raise WrongContentType(f"PATCH bodies must be {OFFSET_CONTENT_TYPE}")
    offset = _non_negative(request.headers.get("upload-offset"), "Upload-Offset")
    headers = await _state_headers(uploads, await _write(request, uploads, upload_id, offset))
    return Response(status_code=204, headers=headers)


async def _write(request: Request, uploads: Uploads, upload_id: str, offset: int) -> Upload:
    length = request.headers.get("upload-length")
    # The body is taken from the socket while the lock is taken (a trip to the database thread):
    # the client, which goes on sending after the headers, is not held up by it.
    pieces = body_pieces(request, idle_timeout(uploads))
    first = asyncio.ensure_future(anext(pieces))
    try:
        write = await tus_uploads.begin_write(
            uploads,
            upload_id,
            offset,
            _non_negative(length, "Upload-Length") if length is not None else None,
            parse_checksum(request.headers.get("upload-checksum")),
        )
    except BaseException:
        await _drop(first, pieces)
        raise
    feeder = ChunkFeeder(write.plan)
    try:
        declared = declared_length(request)
        if declared is not None and declared > write.plan.limit:
            raise TooLarge("the body goes past the upload's length (or the size limit)")
        await tus_uploads.receive(write, feeder, _after(first, pieces))
    except (ClientDisconnect, Invalid, TooSlow, Interrupted):
        # Cut off, stalled, too slow or taken over: keep what arrived, so the client resumes
        # from there.
        await tus_uploads.end_write(uploads, write, feeder, whole=False)
        raise
    except BaseException:
        await tus_uploads.end_write(uploads, write, feeder, failed=True)
        raise
    finally:
        await _drop(first, pieces)
    return await tus_uploads.end_write(uploads, write, feeder)


async def _after(first: asyncio.Future[Piece], rest: AsyncIterator[Piece]) -> AsyncIterator[Piece]:
    """The body's pieces: the one read early, then the rest."""
    try:
        yield await first
    except StopAsyncIteration:  # no body
        return
    async for piece in rest:
        yield piece


async def _drop(first: asyncio.Future[Piece], pieces: AsyncGenerator[Piece, None]) -> None:
    """Stop reading a body (read whole, or not to be read: the request failed)."""
    if not first.done():
        first.cancel()
        await asyncio.wait([first])
    if not first.cancelled():
        first.exception()  # seen: a failed early read is not logged as never retrieved
    with contextlib.suppress(Exception):  # its own error, if any, was the request's already
        await pieces.aclose()


async def _state_answer(uploads: Uploads, upload_id: str) -> Response:
    """Not tus: the upload's state as JSON, with the file record once it is done."""
    upload = await tus_uploads.find(uploads, upload_id)
    state: dict[str, Any] = {
        "id": upload.id,
        "name": upload.name,
        "size": upload.size,
        "offset": upload.byte_offset,
        "state": upload.state,
    }
    stored = await tus_uploads.stored_file(uploads, upload)
    if stored is not None:
        state["file"] = await uploader_record(uploads, stored)
    return JSONResponse(state, headers={"Cache-Control": "no-store"})


async def _state_headers(uploads: Uploads, upload: Upload) -> Headers:
    stored = await tus_uploads.stored_file(uploads, upload)
    headers = _base_headers()
    headers["Upload-Offset"] = str(upload.byte_offset)
    if upload.size is not None:
        headers["Upload-Length"] = str(upload.size)
    else:
        headers["Upload-Defer-Length"] = "1"
    if upload.metadata:
        headers["Upload-Metadata"] = upload.metadata
    if upload.concat:
        headers["Upload-Concat"] = upload.concat
    expires = tus_uploads.expires(uploads, upload)
    if expires is not None:
        headers["Upload-Expires"] = email.utils.formatdate(expires, usegmt=True)
    if stored is not None:
        headers[FILE_HEADER] = stored.id
        headers[SHA256_HEADER] = stored.sha256
        headers[DELETE_TOKEN_HEADER] = await uploads.delete_token(stored.id)
    return headers


# --- header values -----------------------------------------------------------------------------


def _non_negative(value: str | None, name: str) -> int:
    text = (value or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise Invalid(f"{name} must be a non-negative integer")
    return int(text)


def parse_metadata(header: str | None) -> dict[str, bytes]:
    """`key base64,key2 base64,flag`: keys unique and without spaces, values Base64."""
    if header is None or not header.strip():
        return {}  # tuspy sends an empty header when there is no metadata
    if len(header) > MAX_METADATA_BYTES or not _PRINTABLE_ASCII.match(header):
        raise Invalid("Upload-Metadata must be printable ASCII and at most 16 KiB")
    fields: dict[str, bytes] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition(" ")
        if not key or key in fields:
            raise Invalid("Upload-Metadata keys must be non-empty and unique")
        try:
            fields[key] = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"Upload-Metadata value of {key!r} is not Base64") from None
    return fields


def parse_checksum(header: str | None) -> tus_uploads.Checksum | None:
    """`Upload-Checksum: <algorithm> <base64 digest>`; 400 for an algorithm we don't offer."""
    if header is None:
        return None
    algorithm, _, value = header.strip().partition(" ")
    if algorithm not in _DIGEST_SIZES:
        raise Invalid(
            f"checksum algorithm {algorithm!r} is not supported "
            f"(Tus-Checksum-Algorithm: {','.join(tus_uploads.CHECKSUM_ALGORITHMS)})"
        )
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Invalid("the Upload-Checksum digest is not Base64") from None
    if len(digest) != _DIGEST_SIZES[algorithm]:
        raise Invalid(f"an {algorithm} digest has {_DIGEST_SIZES[algorithm]} bytes")
    return tus_uploads.Checksum(algorithm, digest)


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value else None


def _media_type(value: bytes | None) -> str | None:
    text = (_text(value) or "").split(";")[0].strip().lower()
    return text if _MEDIA_TYPE.match(text) else None
