"""What recipients see: the page at a shared link, with the file's facts and a Download button.

`/f/<id>` is the page people share; `/download/<id>` stays the raw bytes (for curl and the CLI).
Every client string is escaped here; the page needs no script and no cookie.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from pyfiledrop import __version__
from pyfiledrop.config import Settings
from pyfiledrop.errors import Forbidden, PyfiledropError
from pyfiledrop.meta import StoredFile
from pyfiledrop.units import format_size
from pyfiledrop.uploads import Uploads
from pyfiledrop.web import downloads, manage

TEMPLATE_PATH = Path(__file__).parent / "templates" / "recipient.html"
FILE_PAGE = "/f/"
DOWNLOADS_OFF = "downloads are disabled on this server"
NO_STORE = {"Cache-Control": "no-store"}  # downloads left and expiry change; never cache them


def public_base(request: Request, settings: Settings) -> str:
    """The origin (and prefix) people reach us at: `public_url` when set, else as asked."""
    if settings.public_url:
        return settings.public_url
    return str(request.base_url).rstrip("/")


def page_link(request: Request, settings: Settings, file_id: str) -> str:
    return f"{public_base(request, settings)}{FILE_PAGE}{file_id}"


def download_link(request: Request, settings: Settings, file_id: str) -> str:
    return f"{public_base(request, settings)}/download/{file_id}"


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
    return HTMLResponse(page, status_code=status, headers=NO_STORE)


def file_page_body(stored: StoredFile) -> str:
    name = html.escape(stored.name)
    href = html.escape(f"/download/{stored.id}")
    return (
        f'<h1 class="recipient-name">{name}</h1>'
        f'<dl class="facts">{file_facts(stored)}</dl>'
        f'<p><a class="button primary" id="download" href="{href}" download>Download</a></p>'
    )


def _uploads(request: Request) -> Uploads:
    uploads: Uploads = request.app.state.uploads
    return uploads


async def file_page(request: Request) -> Response:
    uploads = _uploads(request)
    try:
        if not uploads.settings.allow_downloads:
            raise Forbidden(DOWNLOADS_OFF)
        stored = await downloads.find_file(uploads, request.path_params["file_id"])
    except PyfiledropError as error:
        return page_error(error)
    return render(stored.name, file_page_body(stored))


def page_error(error: PyfiledropError) -> Response:
    """The same small page a browser gets for a dead /download/ link, whatever it Accepts."""
    page = manage.error_page(error.status, error.message)
    page.headers.update(NO_STORE)
    return page


def routes() -> list[BaseRoute]:
    return [
        Route(FILE_PAGE + "{file_id}", file_page, methods=["GET", "HEAD"]),
    ]
