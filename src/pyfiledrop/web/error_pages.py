"""The small HTML page a browser gets instead of JSON for a link that no longer works."""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse


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
