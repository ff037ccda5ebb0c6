"""Behind a reverse proxy: whose X-Forwarded-For/-Proto/-Host are believed (`trusted_proxies`).

From a trusted peer the ASGI scope is rewritten before anything else sees it: `client` becomes the
first address in X-Forwarded-For that is not itself a trusted proxy (walking from the right, the
end the proxies appended to), `scheme` comes from X-Forwarded-Proto and the `host` header from
X-Forwarded-Host. So the cross-site check compares a browser's Origin with the host it really
used, the password throttle counts the real client, and cookies get `Secure` behind TLS. From any
other peer these headers are ignored: a client can't pick its own address for the throttle.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
TRUST_CACHE_SIZE = 4096  # peer addresses whose trust is remembered
CACHED_HOST_CHARS = 64  # "[v6 address]:port" fits
_HOST_FORM = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or CIDRs (`10.0.0.5`, `10.0.0.0/8`, `::1`); ValueError for anything else."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


@functools.lru_cache(maxsize=TRUST_CACHE_SIZE)
def _trusted(host: str, trusted: tuple[Network, ...]) -> bool:
    # Asked for every request (and every X-Forwarded-For hop); parsing the address and testing
    # it against each network cost ~35 us each time, and a server sees few distinct peers.
    address = _address(host)
    return address is not None and any(address in network for network in trusted)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _last_value(scope: Scope, name: bytes) -> str | None:
    """The value the nearest proxy set (several headers or a comma list: the last one)."""
    values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]
    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    return items[-1] if items else None


class ProxyHeadersMiddleware:
    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    def _trusts(self, host: str) -> bool:
        if len(host) > CACHED_HOST_CHARS:  # no address is this long: don't keep it
            return _trusted.__wrapped__(host, self.trusted)
        return _trusted(host, self.trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] not in ("http", "websocket") or not client or not self._trusts(client[0]):
            await self.app(scope, receive, send)
            return
        scope = dict(scope)
        forwarded_for = [
            v.decode("latin-1") for k, v in scope["headers"] if k.lower() == b"x-forwarded-for"
        ]
        hops = [item for value in forwarded_for for item in value.split(",") if item.strip()]
        real = str(client[0])
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage from somewhere: stop at the last address we can vouch for
            real = str(address)
            if not self._trusts(real):
                break
        scope["client"] = (real, 0 if real != client[0] else client[1])
        proto = (_last_value(scope, b"x-forwarded-proto") or "").lower()
        if proto in ("http", "https"):
            scope["scheme"] = proto
        host = _last_value(scope, b"x-forwarded-host")
        if host and _HOST_FORM.match(host):
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"] + [
                (b"host", host.encode("latin-1"))
            ]
        await self.app(scope, receive, send)
