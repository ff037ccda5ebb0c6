"""The per-request answers remembered between requests (peer trust, the owner cookie) stay the
answers for their own input: a cached verdict never leaks to another peer or cookie."""

from __future__ import annotations

from pyfiledrop.web.owner import secret_from_headers
from pyfiledrop.web.proxy import ProxyHeadersMiddleware, parse_networks


def test_trust_is_remembered_per_peer_and_per_network_list() -> None:
    loopback = ProxyHeadersMiddleware(None, parse_networks(["127.0.0.0/8", "::1"]))  # type: ignore[arg-type]
    lan = ProxyHeadersMiddleware(None, parse_networks(["10.0.0.0/8"]))  # type: ignore[arg-type]
    for _ in range(2):  # the second round is answered from the cache
        assert loopback._trusts("127.0.0.1")
        assert loopback._trusts("[::1]:80")
        assert not loopback._trusts("10.1.2.3")
        assert not loopback._trusts("not an address")
        assert not loopback._trusts("1" * 100)  # too long to be kept
        assert lan._trusts("10.1.2.3")
        assert not lan._trusts("127.0.0.1")


def test_the_owner_secret_is_read_per_cookie_header() -> None:
    alice, bob = "a" * 43, "b" * 43
    for _ in range(2):
        assert secret_from_headers({"cookie": f"pfd_owner={alice}"}) == alice
        assert secret_from_headers({"cookie": f"x=1; pfd_owner={bob}"}) == bob
        assert secret_from_headers({"cookie": "pfd_owner=short"}) is None
        assert secret_from_headers({"cookie": 'pfd_owner="unclosed'}) is None
        assert secret_from_headers({}) is None
        padded = "x=" + "y" * 1000 + f"; pfd_owner={alice}"  # too long to be kept
        assert secret_from_headers({"cookie": padded}) == alice
