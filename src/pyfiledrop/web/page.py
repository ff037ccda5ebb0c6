"""The upload page (placeholder until the page lands), and the headers of every response."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Route

from pyfiledrop.config import Settings


def page_routes(settings: Settings) -> list[BaseRoute]:
    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse("pyfiledrop: POST /upload, see docs/API.md")

    return [Route("/", index)]


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "Content-Security-Policy": "default-src 'self'; object-src 'none'; frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
