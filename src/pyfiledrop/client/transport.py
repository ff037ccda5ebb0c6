"""The HTTP side shared by upload and download: one client, the owner cookie, errors in words."""

import http.cookiejar
import json
import ssl
import threading
from typing import Any

import httpx

OWNER_COOKIE = "pfd_owner"
PASSWORD_ENVIRONMENT = "PYFILEDROP_PASSWORD"
CONNECT_TIMEOUT_SECONDS = 10.0
# Long enough for the server to flush and hash the tail of a big file when the last chunk lands.
IO_TIMEOUT_SECONDS = 300.0


class TransferError(Exception):
    """A failure worth one line to the user; never shown with a traceback."""


class AuthError(TransferError):
    """The server refused our password (or its absence): stop everything at once, since every
    further request is one more wrong try counted against this address."""


def refuse_unauthorized(response: httpx.Response) -> None:
    """Raise AuthError for 401/403, and for the 429 of a password lockout."""
    locked = response.status_code == 429 and (json_body(response) or {}).get("code") == (
        "too_many_attempts"
    )
    if response.status_code in (401, 403) or locked:
        raise AuthError(
            f"{server_error(response)}; check --password or ${PASSWORD_ENVIRONMENT}"
            if response.status_code != 403
            else server_error(response)
        )


class _Deferred(httpx.BaseTransport):
    """httpx's own transport, made at the first request that needs it: making it imports
    httpcore (~30 ms of CPU), which a run whose requests all go over `wire` never uses."""

    def __init__(self, verify: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._verify = verify
        self._limits = limits
        self._made: httpx.HTTPTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            if self._made is None:
                self._made = httpx.HTTPTransport(verify=self._verify, limits=self._limits)
        return self._made.handle_request(request)

    def close(self) -> None:
        if self._made is not None:
            self._made.close()


def make_client(connections: int, password: str | None = None, tls: bool = True) -> httpx.Client:
    """`tls=False` when every request goes to an http:// server without a proxy: then loading
    the trust store (about 45 ms of CPU) buys nothing, and a context that trusts nothing would
    refuse any TLS it were ever handed rather than accept it unverified; the transport is then
    made only if a request needs it (httpx skips the environment's proxies when handed a
    transport: there are none then)."""
    # The owner cookie is handled explicitly per file (a resumed upload must present the owner it
    # started with), so the client's own cookie jar accepts nothing.
    no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(
        verify=True if tls else trusting_nothing(),
        transport=None if tls else _Deferred(trusting_nothing(), limits),
        timeout=httpx.Timeout(IO_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        limits=limits,
        cookies=no_cookies,
        headers={
            "User-Agent": "pyfiledrop-cli",
            "Accept": "application/json",
            # A server started with --password (or tokens) wants it on every request.
            **({"Authorization": f"Bearer {password}"} if password else {}),
        },
        follow_redirects=False,
    )


def trusting_nothing() -> ssl.SSLContext:
    """Verifies certificates and host names, against an empty trust store: no TLS passes."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def owner_headers(owner: str | None) -> dict[str, str]:
    return {"Cookie": f"{OWNER_COOKIE}={owner}"} if owner else {}


def owner_from(response: httpx.Response) -> str | None:
    return response.cookies.get(OWNER_COOKIE)


def json_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = json.loads(response.content)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def server_error(response: httpx.Response) -> str:
    """`413 file too large` from the server's `{"error": ...}`, or its status line."""
    try:
        response.read()  # a streamed response's body is not read yet; errors are short
    except httpx.HTTPError:
        return f"{response.status_code} {response.reason_phrase or 'error'}"
    data = json_body(response)
    reason = data.get("error") if data else None
    if not isinstance(reason, str) or not reason:
        reason = response.reason_phrase or "error"
    return f"{response.status_code} {reason}"


def describe_transport_error(error: httpx.TransportError, url: str) -> str:
    if isinstance(error, httpx.ConnectTimeout):
        return f"cannot reach {url}: connection timed out"
    if isinstance(error, httpx.ConnectError):
        detail = str(error).split("] ", 1)[-1] or "connection failed"
        return f"cannot reach {url}: {detail}"
    if isinstance(error, httpx.TimeoutException):
        return f"{url}: the server stopped answering (timeout)"
    detail = str(error) or type(error).__name__
    return f"{url}: connection lost ({detail})"
