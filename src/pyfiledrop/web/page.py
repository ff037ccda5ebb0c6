"""The upload page: its HTML, static assets, favicon and the security headers for every response."""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from pyfiledrop import __version__
from pyfiledrop.config import S3Location, Settings
from pyfiledrop.units import AUTO_CHUNK_COUNT, AUTO_CHUNK_MAX, AUTO_CHUNK_MIN, AUTO_CHUNK_MIN_S3

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_PATH = WEB_DIR / "templates" / "index.html"
FAVICON_PATH = STATIC_DIR / "favicon.ico"
BUNDLED_DROPZONE = "/static/vendor/dropzone/dropzone-min.js"
BUNDLED_QRCODE = "/static/vendor/qrcode-generator/qrcode.js"

# The article's CDN and version, used when only one of --dz-cdn / --dz-version is given.
DEFAULT_DZ_CDN = "https://cdnjs.cloudflare.com/ajax/libs/dropzone"
DEFAULT_DZ_VERSION = "5.7.6"

# Dropzone's own immediate retries, for a custom --index page without pyfiledrop.js; ours replaces
# them with growing pauses for `retry_for` seconds (see _handleUploadError in pyfiledrop.js).
RETRY_CHUNKS_LIMIT = 3
# Files uploaded side by side; each one has up to chunks_in_flight chunks in flight.
PARALLEL_FILES = 2


def uses_cdn(settings: Settings) -> bool:
    return bool(settings.dz_cdn or settings.dz_version)


def missing_assets(settings: Settings) -> list[Path]:
    """Files the page needs that are not in the package. Dropzone is copied in from npm at build
    time (tools/assets.py), so a package built without it is possible; without it the page
    can't upload, so the server refuses to start instead of serving a broken page."""
    needed = [TEMPLATE_PATH, STATIC_DIR / "pyfiledrop.js", STATIC_DIR / "pyfiledrop.css"]
    if not uses_cdn(settings):
        needed.append(STATIC_DIR / BUNDLED_DROPZONE.removeprefix("/static/"))
    return [path for path in needed if not path.is_file()]


def dropzone_script_url(settings: Settings) -> str:
    """Where the page loads Dropzone from: the bundled copy unless a CDN was asked for.

    CDN layouts differ by major version: 5.x (the article's) keeps builds under `min/`,
    6.x ships `dropzone-min.js` at the top of its release folder.
    """
    if not uses_cdn(settings):
        return f"{BUNDLED_DROPZONE}?v={__version__}"
    cdn = (settings.dz_cdn or DEFAULT_DZ_CDN).rstrip("/")
    version = settings.dz_version or DEFAULT_DZ_VERSION
    major = version.lstrip("v").split(".", 1)[0]
    if major.isdigit() and int(major) < 6:
        return f"{cdn}/{version}/min/dropzone.min.js"
    return f"{cdn}/{version}/dropzone-min.js"


def cdn_origin(settings: Settings) -> str | None:
    if not uses_cdn(settings):
        return None
    parts = urlsplit(dropzone_script_url(settings))
    if not parts.netloc:
        return None  # a path on this server: 'self' covers it
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme else parts.netloc


def auto_chunk_floor(settings: Settings) -> int:
    """Auto's smallest chunk: larger on S3, whose parts (but the last) must be 5 MiB or more."""
    return AUTO_CHUNK_MIN_S3 if isinstance(settings.storage, S3Location) else AUTO_CHUNK_MIN


def page_config(settings: Settings) -> dict[str, Any]:
    """What the page's script needs, handed over as JSON data (never pasted into JS source)."""
    parallel_chunks: int | bool = settings.chunks_in_flight if settings.parallel_chunks else False
    return {
        "dropzone": {
            "url": "/upload",
            "method": "post",
            "paramName": "file",
            "chunking": True,
            "forceChunking": settings.force_chunking,
            "parallelChunkUploads": parallel_chunks,
            "parallelUploads": PARALLEL_FILES,
            "retryChunks": True,
            "retryChunksLimit": RETRY_CHUNKS_LIMIT,
            "timeout": settings.timeout,
            "maxFilesize": settings.max_size,
            # A number, as before, for scripts that read it: the fixed size, or auto's smallest.
            "chunkSize": settings.chunk_size or auto_chunk_floor(settings),
            "filesizeBase": 1024,
        },
        # --chunk-size auto: the page picks each file's chunk size (units.auto_chunk_size).
        "chunkSizeAuto": None
        if settings.chunk_size
        else {
            "min": auto_chunk_floor(settings),
            "max": AUTO_CHUNK_MAX,
            "chunks": AUTO_CHUNK_COUNT,
        },
        "allowDownloads": settings.allow_downloads,
        "publicUrl": settings.public_url,  # None: the page's own origin
        "pageUrl": "/f/{id}",
        "retryFor": settings.retry_for,  # seconds; a failed chunk is retried this long
        "expireAfter": settings.expire_after,  # seconds, or None: files stay until deleted
        "filesUrl": "/api/files",
        "finishUrl": "/upload/{uuid}/finish",
        "statusUrl": "/upload/{uuid}",
    }


def json_for_html(value: Any) -> str:
    """JSON that is safe inside a <script type="application/json"> element."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def template_values(settings: Settings) -> dict[str, str]:
    return {
        "version": html.escape(__version__),
        "config_json": json_for_html(page_config(settings)),
        "dropzone_src": html.escape(dropzone_script_url(settings)),
        "qrcode_src": html.escape(f"{BUNDLED_QRCODE}?v={__version__}"),
    }


def render_index(settings: Settings) -> str:
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(template_values(settings))


def render_custom_index(path: Path, settings: Settings) -> str:
    """An operator's page (--index); it may use the same ${...} placeholders as ours."""
    return Template(path.read_text(encoding="utf-8")).safe_substitute(template_values(settings))


@dataclass(frozen=True)
class InlineCode:
    """SHA-256 CSP sources for what a page runs inline: elements, and attributes (`onclick`,
    `style`), which CSP allows by hash only together with 'unsafe-hashes'."""

    scripts: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    script_attributes: tuple[str, ...] = ()
    style_attributes: tuple[str, ...] = ()


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


class _InlineFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, list[str]] = {
            "scripts": [], "styles": [], "script_attributes": [], "style_attributes": []
        }  # fmt: skip
        self._inside: str | None = None  # "scripts" or "styles" while in an inline element
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name.startswith("on") and value:
                self.found["script_attributes"].append(value)
            elif name == "style" and value:
                self.found["style_attributes"].append(value)
        if tag == "style" or (tag == "script" and not any(n == "src" for n, _ in attrs)):
            self._inside, self._text = ("styles" if tag == "style" else "scripts"), []

    def handle_data(self, data: str) -> None:
        if self._inside is not None:
            self._text.append(data)  # script and style text comes raw (no entity decoding)

    def handle_endtag(self, tag: str) -> None:
        if self._inside is not None and tag in ("script", "style"):
            self.found[self._inside].append("".join(self._text))
            self._inside = None


def inline_code(page: str) -> InlineCode:
    """What a browser would hash: the text of each inline `<script>`/`<style>` (line ends
    normalized to LF, as HTML parsing does), and each event-handler and style attribute."""
    finder = _InlineFinder()
    finder.feed(page.replace("\r\n", "\n").replace("\r", "\n"))
    finder.close()
    return InlineCode(
        **{
            kind: tuple(dict.fromkeys(map(_csp_hash, texts)))
            for kind, texts in finder.found.items()
        }
    )


def _sources(base: str, hashes: tuple[str, ...], attribute_hashes: tuple[str, ...]) -> str:
    extra = list(hashes)
    if attribute_hashes:
        extra += ["'unsafe-hashes'", *attribute_hashes]
    return " ".join([base, *extra])


def content_security_policy(settings: Settings, inline: InlineCode = InlineCode()) -> str:
    extra = cdn_origin(settings)
    # Dropzone's CDN serves its stylesheets beside its script (the article's page uses both).
    own = "'self'" + (f" {extra}" if extra else "")
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {_sources(own, inline.scripts, inline.script_attributes)}",
            f"style-src {_sources(own, inline.styles, inline.style_attributes)}",
            "img-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(settings: Settings) -> dict[str, str]:
    """Headers the app adds to every response (the page, the API and downloads alike)."""
    return {
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        # Keeps the Origin on our own form posts (no-referrer made Chromium send `Origin: null`,
        # refused as cross-site) and gives other sites nothing, not even a download link's path.
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
    }


def index_endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    no_cache = {"Cache-Control": "no-cache"}
    custom = settings.index
    if custom is not None:
        rendered: dict[tuple[int, int], tuple[str, str]] = {}

        def current() -> tuple[str, str]:
            """The page and its CSP, which allows exactly its own inline code (by hash). Made at
            start, and again when the file changes: an operator may edit it without a restart."""
            stat = custom.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            if key not in rendered:
                body = render_custom_index(custom, settings)
                rendered.clear()
                rendered[key] = (body, content_security_policy(settings, inline_code(body)))
            return rendered[key]

        current()

        async def custom_index(request: Request) -> Response:
            body, csp = current()
            return HTMLResponse(body, headers={**no_cache, "Content-Security-Policy": csp})

        return custom_index

    body = render_index(settings)

    async def index(request: Request) -> Response:
        return HTMLResponse(body, headers=no_cache)

    return index


async def favicon(request: Request) -> Response:
    return FileResponse(
        FAVICON_PATH, media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )


def page_routes(settings: Settings) -> list[BaseRoute]:
    return [
        Route("/", index_endpoint(settings), methods=["GET", "HEAD"]),
        Route("/favicon.ico", favicon, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
