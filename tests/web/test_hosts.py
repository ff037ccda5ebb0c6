"""DNS rebinding: `allowed_hosts` refuses other Host names; `public_url` is the base of the
absolute URLs the server writes (tus `Location` came from the request's Host)."""

from __future__ import annotations

from pathlib import Path

from pyfiledrop.config import Settings
from pyfiledrop.server import exposure_warning
from pyfiledrop.web.hosts import host_allowed
from tests.conftest import ServerFactory
from tests.harness import app_client
from tests.rawhttp import exchange

TUS_CREATE = (
    "POST /files/ HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\n"
    "Upload-Length: 10\r\nContent-Length: 0\r\n\r\n"
)


def test_tus_location_is_built_on_public_url_not_the_host(server_factory: ServerFactory) -> None:
    server = server_factory("--public-url", "https://files.example.org/")
    answer = exchange(server.port, TUS_CREATE.format(host="evil.example").encode())
    assert answer is not None and answer.status == 201, answer
    location = answer.header("location") or ""
    assert location.startswith("https://files.example.org/files/"), location


def test_other_host_names_are_refused(server_factory: ServerFactory) -> None:
    server = server_factory("--allowed-host", "files.example.org", "--allowed-host", "127.0.0.1")
    refused = exchange(server.port, TUS_CREATE.format(host="evil.example").encode())
    assert refused is not None and refused.status == 421, refused
    assert b"evil" not in refused.body
    served = exchange(server.port, TUS_CREATE.format(host="files.example.org").encode())
    assert served is not None and served.status == 201, served
    health = exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.11\r\n\r\n")
    assert health is not None and health.status == 200  # load balancers probe by address


def test_host_matching() -> None:
    allowed = ("files.example.org", "*.example.net", "127.0.0.1:8080", "[::1]")
    for host in ("files.example.org", "FILES.example.org:443", "a.example.net", "127.0.0.1:8080"):
        assert host_allowed(host, allowed), host
    assert host_allowed("[::1]:16273", allowed)
    for host in ("evil.example", "example.net.evil", "127.0.0.1:9", "", "files.example.org.x"):
        assert not host_allowed(host, allowed), host


def test_in_process_default_answers_any_host(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        answer = client.get("/api/files", headers={"Host": "anything.example"})
    assert answer.status_code == 200


def test_a_warning_when_bound_beyond_loopback_without_allowed_hosts() -> None:
    assert exposure_warning(Settings(host="0.0.0.0")) is not None
    assert exposure_warning(Settings(host="0.0.0.0", allowed_hosts=("a.example",))) is None
    assert exposure_warning(Settings(host="127.0.0.1")) is None
