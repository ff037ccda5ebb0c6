"""The owner: a random secret in an HttpOnly cookie, and the ASGI middleware around every request.

The middleware also adds the security headers, answers CORS for configured origins only, and
refuses state-changing requests from other origins.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

OWNER_COOKIE = "pfd_owner"
OWNER_COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
_SECRET_FORM = re.compile(r"^[A-Za-z0-9_-]{43}$")
SECRET_CACHE_SIZE = 4096  # cookie headers whose owner secret is remembered
CACHED_COOKIE_CHARS = 512  # longer ones are parsed each time (the cache stays under ~2 MiB)
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def owner_id(secret: str) -> str:
    """What the database keeps: a hash, so a leaked database can't impersonate anyone."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_from_headers(headers: Mapping[str, str]) -> str | None:
    header = headers.get("cookie", "")
    if len(header) > CACHED_COOKIE_CHARS:  # clients choose it: never hold their big headers
        return _secret_from_cookie.__wrapped__(header)
    return _secret_from_cookie(header)


@functools.lru_cache(maxsize=SECRET_CACHE_SIZE)
def _secret_from_cookie(header: str) -> str | None:
    # Parsed for every request: SimpleCookie took ~33 us, and a client sends the same header
    # with each of its chunks.
    cookie = SimpleCookie()
    try:
        cookie.load(header)
    except Exception:
        return None
    morsel = cookie.get(OWNER_COOKIE)
    if morsel is None or not _SECRET_FORM.match(morsel.value):
        return None
    return morsel.value


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


def _cross_site(headers: Mapping[str, str]) -> bool:
    """Did a browser send this from another site's page? (Scripts and curl send none of these.)

    Sec-Fetch-Site is the browser's own answer and holds behind any proxy. Without it (older
    browsers), Origin, else Referer, is compared with the Host the browser used (behind a trusted
    proxy, its X-Forwarded-Host: see web/proxy.py). `Origin: null` (a sandboxed or
    privacy-stripped page) is refused: we can't tell where it came from.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    source = headers.get("origin") or headers.get("referer")
    if source is None:
        return False
    return source == "null" or not _same_origin(source, headers.get("host", ""))


class OwnerMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        cors_origins: tuple[str, ...],
        security_headers: Callable[[], Mapping[str, str]],
        expose_headers: Sequence[str] = (),
        listed_only_headers: Sequence[str] = (),
    ) -> None:
        self.app = app
        self.cors_origins = set(cors_origins) - {"*"}
        # `*`: any origin, but never with credentials (see __call__).
        self.any_origin = "*" in cors_origins
        # Response headers a cross-origin script may read (tus clients need Location, offsets);
        # the delete token only by the origins named, not by every site under `*`.
        self.expose_headers = ", ".join(expose_headers).encode()
        self.expose_to_any = ", ".join(
            h for h in expose_headers if h not in listed_only_headers
        ).encode()
        self.security_headers = [
            (name.lower().encode(), value.encode()) for name, value in security_headers().items()
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get("origin")
        listed = origin is not None and origin in self.cors_origins
        anyone = (
            not listed
            and self.any_origin
            and origin not in (None, "null")
            and _cross_site(headers)  # our own page sends its Origin too: not "anyone"
        )
        cors_allowed = listed or anyone
        method = scope["method"]
        if method == "OPTIONS" and cors_allowed and "access-control-request-method" in headers:
            await self._preflight(send, origin or "", headers, listed)
            return
        if anyone and any(k.lower() == b"cookie" for k, _ in scope["headers"]):
            # Any site may call us under `*`, so the visitor's cookies must not act for it:
            # credentialed requests from unlisted origins are refused, not served anonymously.
            await _json(send, 403, {"error": "credentials are allowed only from listed origins"})
            return
        if method in UNSAFE_METHODS and not cors_allowed and _cross_site(headers):
            await _json(send, 403, {"error": "cross-site requests are not allowed"})
            return

        secret = secret_from_headers(headers)
        new_secret = secret is None
        if secret is None:
            secret = secrets.token_urlsafe(32)
        state = scope.setdefault("state", {})
        state["owner"] = owner_id(secret)
        state["owner_sent"] = not new_secret  # a fresh secret is only an offer until sent back

        extra = list(self.security_headers)
        if new_secret:
            secure = "; Secure" if scope.get("scheme") == "https" else ""
            cookie = (
                f"{OWNER_COOKIE}={secret}; Path=/; Max-Age={OWNER_COOKIE_MAX_AGE}; "
                f"HttpOnly; SameSite=Lax{secure}"
            )
            extra.append((b"set-cookie", cookie.encode()))
        if cors_allowed:
            extra += _cors_headers(origin or "", listed)
            exposed = self.expose_headers if listed else self.expose_to_any
            if exposed:
                extra.append((b"access-control-expose-headers", exposed))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value)
                    for name, value in extra
                    if name not in present or name == b"set-cookie"
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _preflight(
        self, send: Send, origin: str, request: Mapping[str, str], listed: bool
    ) -> None:
        # With credentials a browser takes `*` literally, so name the headers it asked for.
        asked = request.get("access-control-request-headers", "").encode("latin-1") or b"*"
        headers = [
            *_cors_headers(origin, listed),
            (b"access-control-allow-methods", b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            (b"access-control-allow-headers", asked),
            (b"access-control-max-age", b"600"),
        ]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


def _cors_headers(origin: str, listed: bool) -> list[tuple[bytes, bytes]]:
    """A listed origin is named, with credentials; any other (under `*`) gets `*`, without."""
    if not listed:
        return [(b"access-control-allow-origin", b"*"), (b"vary", b"Origin")]
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"vary", b"Origin"),
    ]


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
