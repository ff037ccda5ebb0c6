"""Who may use the server: an optional password (and tokens) for the page, uploads and the API.

Browsers log in once with a small form and get an HttpOnly session cookie (signed with the
server's key, tied to the configured secrets, so changing the password ends every session);
scripts and the CLI send `Authorization: Bearer <password or token>`. `/healthz` and download
links stay open: a link's random id is what its recipient holds.

Failed attempts are counted per client address, in this process's memory: each failure is answered
after a delay that doubles, and after LOCKOUT_FAILURES within FAILURE_WINDOW_SECONDS the address
gets 429 until its failures age out. Several worker processes each keep their own count.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import time
from collections import deque
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pyfiledrop.config import Settings
from pyfiledrop.logs import loggable_path
from pyfiledrop.web.watch import client_address

log = logging.getLogger("pyfiledrop")

SESSION_COOKIE = "pfd_session"
SESSION_SECONDS = 30 * 24 * 3600
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout", "/favicon.ico"})
OPEN_PREFIXES = ("/download/", "/static/", "/f/", "/s/")  # links shared with recipients
FAILURE_WINDOW_SECONDS = 15 * 60
FIRST_DELAY_SECONDS = 0.25
MAX_DELAY_SECONDS = 8.0
LOCKOUT_FAILURES = 10
MAX_TRACKED_ADDRESSES = 100_000
MAX_LOGIN_BODY_BYTES = 8192


def accepted_secrets(settings: Settings) -> tuple[str, ...]:
    return tuple(s for s in (settings.password, *settings.tokens) if s)


def auth_enabled(settings: Settings) -> bool:
    return bool(accepted_secrets(settings))


class Secrets:
    """The accepted secrets, compared in constant time (as equal-length digests)."""

    def __init__(self, settings: Settings) -> None:
        self._digests = [hashlib.sha256(s.encode()).digest() for s in accepted_secrets(settings)]
        # Sessions name the set of secrets they were granted under: change it and they end.
        self.fingerprint = hashlib.sha256(b"\0".join(self._digests)).hexdigest()

    def match(self, given: str) -> bool:
        digest = hashlib.sha256(given.encode()).digest()
        found = False
        for accepted in self._digests:
            found |= hmac.compare_digest(accepted, digest)
        return found


class Throttle:
    """Failed attempts per client address: growing delays, then 429 for a while."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and failures[0] <= now - FAILURE_WINDOW_SECONDS:
            failures.popleft()
        if not failures:
            self._failures.pop(address, None)
        return failures

    def locked_for(self, address: str) -> float:
        """Seconds until this address may try again (0: it may now)."""
        now = time.monotonic()
        failures = self._recent(address, now)
        if len(failures) < LOCKOUT_FAILURES:
            return 0.0
        return failures[-LOCKOUT_FAILURES] + FAILURE_WINDOW_SECONDS - now

    def fail(self, address: str, where: str) -> float:
        """Record a failure; returns how long to wait before answering it."""
        now = time.monotonic()
        failures = self._recent(address, now)
        failures.append(now)
        self._failures[address] = failures
        log.warning(
            "auth failure from %s on %s (%d in %d min)",
            address, where, len(failures), FAILURE_WINDOW_SECONDS // 60,
        )  # fmt: skip
        if len(failures) == LOCKOUT_FAILURES:
            log.warning(
                "locked out %s for %d min after %d wrong passwords",
                address, FAILURE_WINDOW_SECONDS // 60, LOCKOUT_FAILURES,
            )  # fmt: skip
        if len(self._failures) > MAX_TRACKED_ADDRESSES:
            self._failures.pop(next(iter(self._failures)))  # the longest-tracked address
        return float(min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2 ** (len(failures) - 1)))

    def succeed(self, address: str) -> None:
        self._failures.pop(address, None)


def _address(scope: Scope) -> str:
    return client_address(scope)


def session_value(key: bytes, fingerprint: str, expires: int) -> str:
    mac = hmac.new(key, f"session:{expires}:{fingerprint}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def session_valid(key: bytes, fingerprint: str, value: str, now: float) -> bool:
    expires_text = value.partition(".")[0]
    if not expires_text.isdigit() or len(expires_text) > 12 or int(expires_text) < now:
        return False
    expected = session_value(key, fingerprint, int(expires_text))
    return hmac.compare_digest(expected.encode(), value.encode())


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:
        return None
    morsel = cookie.get(name)
    return morsel.value if morsel is not None else None


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


def _wants_page(scope: Scope, headers: Mapping[str, str]) -> bool:
    return scope["method"] in ("GET", "HEAD") and "text/html" in headers.get("accept", "")


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (no //host, no scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


async def _server_key(scope: Scope) -> bytes:
    key: bytes = await scope["app"].state.uploads.key()
    return key


class AuthMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.secrets = Secrets(settings)
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})["auth"] = self
        path: str = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        session = _cookie(headers, SESSION_COOKIE)
        if session and session_valid(
            await _server_key(scope), self.secrets.fingerprint, session, time.time()
        ):
            await self.app(scope, receive, send)
            return
        address = _address(scope)
        given = _bearer(headers)
        if given is not None:
            locked = self.throttle.locked_for(address)
            if locked > 0:
                await too_many(locked)(scope, receive, send)
                return
            if self.secrets.match(given):
                await self.app(scope, receive, send)
                return
            await asyncio.sleep(self.throttle.fail(address, loggable_path(path)))
            await unauthorized("wrong password or token")(scope, receive, send)
            return
        if _wants_page(scope, headers):
            target = path + (
                f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
            )
            await RedirectResponse(f"/login?next={quote(target)}", status_code=303)(
                scope, receive, send
            )
            return
        await unauthorized("this server needs a password")(scope, receive, send)


def unauthorized(message: str) -> Response:
    return JSONResponse(
        {"error": message, "code": "unauthorized"},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="pyfiledrop"'},
    )


def too_many(seconds: float) -> Response:
    wait = max(1, int(seconds + 0.999))
    return JSONResponse(
        {"error": f"too many wrong passwords; try again in {wait} s", "code": "too_many_attempts"},
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


# --- the login form ------------------------------------------------------------------------


def login_page(next_path: str, message: str | None = None, status: int = 200) -> HTMLResponse:
    """A form and nothing else: no script (the CSP allows none inline), no third-party assets."""
    notice = f'<p role="alert"><strong>{html.escape(message)}</strong></p>' if message else ""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        "<title>Log in - pyfiledrop</title></head><body><main>"
        f"<h1>pyfiledrop</h1>{notice}"
        '<form method="post" action="/login">'
        '<label for="password">Password</label> '
        '<input id="password" name="password" type="password" autocomplete="current-password"'
        " required autofocus> "
        f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
        '<button type="submit">Log in</button></form></main></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _auth(request: Request) -> AuthMiddleware | None:
    found: Any = request.scope.get("state", {}).get("auth")
    return found if isinstance(found, AuthMiddleware) else None


async def show_login(request: Request) -> Response:
    if _auth(request) is None:
        return RedirectResponse("/", status_code=303)
    return login_page(safe_next(request.query_params.get("next")))


async def log_in(request: Request) -> Response:
    auth = _auth(request)
    if auth is None:
        return RedirectResponse("/", status_code=303)
    length = request.headers.get("content-length", "")
    if not length.isdigit() or int(length) > MAX_LOGIN_BODY_BYTES:
        return login_page("/", "the form is too large", status=413)
    form = await request.form()
    password = form.get("password")
    next_path = safe_next(str(form.get("next") or "/"))
    address = _address(request.scope)
    locked = auth.throttle.locked_for(address)
    if locked > 0:
        return login_page(next_path, f"Too many wrong passwords; try again in {locked:.0f} s.", 429)
    if not isinstance(password, str) or not auth.secrets.match(password):
        await asyncio.sleep(auth.throttle.fail(address, "/login"))
        return login_page(next_path, "Wrong password.", status=401)
    auth.throttle.succeed(address)
    expires = int(time.time()) + SESSION_SECONDS
    value = session_value(await _server_key(request.scope), auth.secrets.fingerprint, expires)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return response


async def log_out(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax")
    return response


def auth_routes() -> list[BaseRoute]:
    return [
        Route("/login", show_login, methods=["GET"]),
        Route("/login", log_in, methods=["POST"]),
        Route("/logout", log_out, methods=["POST"]),
    ]
