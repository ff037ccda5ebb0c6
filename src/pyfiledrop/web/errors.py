"""The one table from the core's refusals to HTTP, and the one renderer of them.

A protocol that wants more on its error answers (tus: its version headers, the upload's offset) or
its own names for fields registers an `ErrorStyle` on the request (`use_style`); the renderer asks
it, so every refusal is still logged, counted and rendered here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyfiledrop import errors
from pyfiledrop.logs import loggable_path, printable
from pyfiledrop.web import error_pages
from pyfiledrop.web.watch import client_address, note_error_code, noted_upload

log = logging.getLogger("pyfiledrop")

# Looked up along the class's bases, so a subclass answers as its family unless listed itself.
STATUS: dict[type[errors.PyfiledropError], int] = {
    errors.Invalid: 400,
    errors.NotPermitted: 403,
    errors.Missing: 404,
    errors.TooSlow: 408,
    errors.Conflicting: 409,
    errors.FileGone: 410,
    errors.UnsupportedVersion: 412,
    errors.TooLarge: 413,
    errors.WrongContentType: 415,
    errors.BadRange: 416,
    errors.UploadBusy: 423,
    errors.TooManyUploads: 429,
    errors.ChecksumMismatch: 460,  # tus's own status
    errors.Unavailable: 503,
    errors.NoSpace: 507,
}
# Seconds sent as Retry-After: the same request may succeed then.
RETRY_AFTER: dict[type[errors.PyfiledropError], int] = {
    errors.TooManyUploads: 60,
    errors.Unavailable: 5,
    errors.ChunkBusy: 1,
}
_STYLE_KEY = "pyfiledrop.error_style"

Headers = dict[str, str]


@dataclass(frozen=True)
class ErrorStyle:
    """A protocol's additions: wire names of the core's fields, and a hook that may change the
    answer's headers (it gets the ones the renderer chose)."""

    names: Mapping[str, str] = field(default_factory=dict)
    headers: Callable[[Request, errors.PyfiledropError, int, Headers], None] | None = None


def use_style(request: Request, style: ErrorStyle) -> None:
    request.scope[_STYLE_KEY] = style


def _lookup(table: Mapping[type[errors.PyfiledropError], int], kind: type) -> int | None:
    for base in kind.__mro__:
        if base in table:
            return table[base]
    return None


def status_of(error: errors.PyfiledropError) -> int:
    return _lookup(STATUS, type(error)) or 400


def retry_after(kind: type[errors.PyfiledropError]) -> int | None:
    return _lookup(RETRY_AFTER, kind)


def render(request: Request, error: errors.PyfiledropError) -> Response:
    style: ErrorStyle = request.scope.get(_STYLE_KEY) or ErrorStyle()
    status = status_of(error)
    message = error.worded(style.names)
    note_error_code(request.scope, error.code)
    upload_id = noted_upload(request.scope)
    log.warning(
        "refused %s %s from %s%s: %d %s: %s",
        request.method, loggable_path(request.url.path), client_address(request.scope),
        f" (upload {upload_id})" if upload_id else "", status, error.code, printable(message),
    )  # fmt: skip
    if status in (404, 410) and error_pages.wants_html(request):
        return error_pages.error_page(status, message)
    headers: Headers = {}
    seconds = retry_after(type(error))
    if seconds is not None:
        headers["Retry-After"] = str(seconds)
    # A refused body is not read to its end; closing the connection stops the client sending it.
    if request.method in ("POST", "PUT", "PATCH"):
        headers["Connection"] = "close"
    if style.headers is not None:
        style.headers(request, error, status, headers)
    return JSONResponse(error.body(style.names), status_code=status, headers=headers)
