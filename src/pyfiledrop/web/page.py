"""The upload page: its HTML, static assets, favicon and the security headers for every response."""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
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

# The article's CDN and version, used when only one of --dz-cdn / --dz-version is given.
DEFAULT_DZ_CDN = "https://cdnjs.cloudflare.com/ajax/libs/dropzone"
DEFAULT_DZ_VERSION = "5.7.6"

# A failed chunk is sent again this many times before the file is marked as failed.
RETRY_CHUNKS_LIMIT = 3
# Files uploaded side by side; each one has up to chunks_in_flight chunks in flight.
PARALLEL_FILES = 2


def uses_cdn(settings: Settings) -> bool:
    return bool(settings.dz_cdn or settings.dz_version)


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
    }


def render_index(settings: Settings) -> str:
    template = Template(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return template.substitute(template_values(settings))


def render_custom_index(path: Path, settings: Settings) -> str:
    """An operator's page (--index); it may use the same ${...} placeholders as ours."""
    return Template(path.read_text(encoding="utf-8")).safe_substitute(template_values(settings))


def security_headers(settings: Settings) -> dict[str, str]:
    """Headers the app adds to every response (the page, the API and downloads alike)."""
    extra = cdn_origin(settings)
    script_src = "'self'" + (f" {extra}" if extra else "")
    csp = "; ".join(
        [
            "default-src 'self'",
            f"script-src {script_src}",
            "style-src 'self'",
            "img-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }


def index_endpoint(settings: Settings) -> Callable[[Request], Awaitable[Response]]:
    no_cache = {"Cache-Control": "no-cache"}
    custom = settings.index
    if custom is not None:

        async def custom_index(request: Request) -> Response:
            # Read on each request so an operator can edit the page without a restart.
            return HTMLResponse(render_custom_index(custom, settings), headers=no_cache)

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
