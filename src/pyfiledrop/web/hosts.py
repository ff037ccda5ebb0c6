"""DNS rebinding: with `allowed_hosts` set, requests naming any other `Host` are refused.

A hostile page whose domain resolves to this server passes the same-origin check (its Origin and
Host agree), so only the Host itself tells such requests apart. `/healthz` is exempt: load
balancers probe nodes by address.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

EXEMPT_PATHS = frozenset({"/healthz"})


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """`host` (a Host header: name or [v6], maybe :port) against entries with or without a port;
    `*.example.org` allows every subdomain of example.org."""
    host = host.strip().lower()
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or "]:" in host else host
    for entry in allowed:
        if entry.startswith("*."):
            if name.endswith(entry[1:]):
                return True
        elif entry in (host, name):
            return True
    return False


class AllowedHosts:
    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode("latin-1")
        if host_allowed(host, self.allowed):
            await self.app(scope, receive, send)
            return
        # The request's own Host is not echoed back: it is the attacker's string.
        response = JSONResponse(
            {"error": "this server does not answer for that host name", "code": "wrong_host"},
            status_code=421,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
