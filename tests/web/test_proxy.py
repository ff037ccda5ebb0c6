"""`trusted_proxies`: whose X-Forwarded-For/-Proto/-Host are believed, for the password throttle
and the cross-site check."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from pyfiledrop.config import load_settings
from pyfiledrop.server import uvicorn_options
from pyfiledrop.web import auth
from tests.harness import app_client, settings_in

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from pyfiledrop.web.app import create_app

PASSWORD = "right one"


@contextmanager
def real_server(root: Path, **overrides: Any) -> Iterator[httpx.Client]:
    """The app under uvicorn with the options `pyfiledrop serve` uses, on a loopback port."""
    settings = settings_in(root, password=PASSWORD, host="127.0.0.1", **overrides)
    options = {**uvicorn_options(settings), "port": 0}
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=url, timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def client_from(root: Path, peer: str, **overrides: Any) -> Iterator[TestClient]:
    with app_client(root, peer=(peer, 40000), password=PASSWORD, **overrides) as client:
        yield client


def wrong(client: httpx.Client | TestClient, forwarded_for: str) -> int:
    answer = client.get(
        "/api/files", headers={"Authorization": "Bearer nope", "X-Forwarded-For": forwarded_for}
    )
    return answer.status_code


@pytest.fixture(autouse=True)
def quick_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth, "FIRST_DELAY_SECONDS", 0.001)
    monkeypatch.setattr(auth, "MAX_DELAY_SECONDS", 0.001)
    monkeypatch.setattr(auth, "LOCKOUT_FAILURES", 3)


def test_rotating_x_forwarded_for_from_an_untrusted_peer_gets_no_extra_tries(
    tmp_path: Path,
) -> None:
    # A local client talking straight to the server (uvicorn's own proxy handling trusted it).
    with real_server(tmp_path, trusted_proxies=("10.9.9.9/32",)) as client:
        answers = [wrong(client, f"198.51.100.{n}") for n in range(5)]
    assert answers == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_client_has_its_own_count(tmp_path: Path) -> None:
    # The default trusts loopback: a proxy on this machine (nginx) names the real client.
    with real_server(tmp_path) as client:
        assert [wrong(client, "198.51.100.7") for _ in range(4)] == [401, 401, 401, 429]
        # Someone else behind the same proxy is not locked out with them...
        ok = client.get(
            "/api/files",
            headers={"Authorization": f"Bearer {PASSWORD}", "X-Forwarded-For": "203.0.113.9"},
        )
        assert ok.status_code == 200
        # ...and a client can't hide behind a made-up hop in front of the real one.
        assert wrong(client, "203.0.113.50, 198.51.100.7") == 429


def test_forwarded_host_and_proto_count_only_from_a_trusted_peer(tmp_path: Path) -> None:
    page = {"Origin": "https://files.example.org:8443", "X-Forwarded-Proto": "https"}
    forwarded = {**page, "X-Forwarded-Host": "files.example.org:8443"}
    bearer = {"Authorization": f"Bearer {PASSWORD}"}
    with client_from(tmp_path / "a", "127.0.0.1") as client:
        answer = client.put("/put/a.txt", content=b"a", headers={**forwarded, **bearer})
        assert answer.status_code == 201, answer.text
        assert "Secure" in answer.headers["set-cookie"]
    with client_from(tmp_path / "b", "192.0.2.1") as client:
        answer = client.put("/put/b.txt", content=b"b", headers={**forwarded, **bearer})
        assert answer.status_code == 403
        assert "Secure" not in answer.headers.get("set-cookie", "")


def test_trusted_proxies_setting() -> None:
    assert load_settings({}, environ={}).settings.trusted_proxies == ("127.0.0.0/8", "::1/128")
    loaded = load_settings({"trusted_proxies": ["10.0.0.5", "10.1.0.0/16"]}, environ={})
    assert loaded.settings.trusted_proxies == ("10.0.0.5/32", "10.1.0.0/16")
    none = load_settings({}, environ={"PYFILEDROP_TRUSTED_PROXIES": "none"})
    assert none.settings.trusted_proxies == ()
