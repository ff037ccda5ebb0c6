"""--password and tokens: the page, uploads and the API need them; wrong ones are slowed."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from pyfiledrop.config import load_settings
from pyfiledrop.web import auth
from tests.conftest import ServerFactory
from tests.harness import running_app

PASSWORD = "correct horse"
TOKEN = "tok-for-scripts-1"


def test_everything_but_health_and_links_needs_the_password(tmp_path: Path) -> None:
    with running_app(tmp_path, password=PASSWORD, tokens=(TOKEN,)) as app:
        client = app.client
        assert client.get("/healthz").status_code == 200
        refused = client.get("/api/files")
        assert refused.status_code == 401
        assert refused.json()["code"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert client.put("/put/x.txt", content=b"x").status_code == 401
        assert client.post("/upload", files={"file": ("x", b"x")}).status_code == 401
        assert client.get("/files/", headers={"Tus-Resumable": "1.0.0"}).status_code == 401
        page = client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/"
        assert list(app.settings.storage.iterdir()) == []

        for secret in (PASSWORD, TOKEN):
            headers = {"Authorization": f"Bearer {secret}"}
            assert client.get("/api/files", headers=headers).status_code == 200


def test_bearer_uploads_and_open_download_links(tmp_path: Path) -> None:
    with running_app(tmp_path, password=PASSWORD) as app:
        headers = {"Authorization": f"Bearer {PASSWORD}"}
        response = app.client.put("/put/shared.txt", content=b"shared", headers=headers)
        assert response.status_code == 201
        record = response.json()
        stranger = app.other_client()
        download = stranger.get(record["url"])
        assert download.status_code == 200 and download.content == b"shared"
        assert stranger.get(f"/api/files/{record['id']}").status_code == 401


def test_login_form_sets_a_session_cookie(tmp_path: Path) -> None:
    with running_app(tmp_path, password=PASSWORD) as app:
        client = app.client
        form = client.get("/login?next=/api/files")
        assert form.status_code == 200
        assert '<form method="post" action="/login">' in form.text
        assert "<script" not in form.text and "style=" not in form.text
        assert 'value="/api/files"' in form.text
        logged_in = client.post(
            "/login", data={"password": PASSWORD, "next": "/api/files"}, follow_redirects=False
        )
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/api/files"
        cookie = logged_in.headers["set-cookie"]
        assert cookie.startswith(f"{auth.SESSION_COOKIE}=") and "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert client.get("/api/files").status_code == 200
        assert client.put("/put/a.txt", content=b"a").status_code == 201
        # A forged or stale session is not a session.
        other = app.other_client()
        other.cookies.set(auth.SESSION_COOKIE, "9999999999.deadbeef")
        assert other.get("/api/files").status_code == 401
        # Somewhere else after logging in? Only paths on this server.
        elsewhere = other.post(
            "/login",
            data={"password": PASSWORD, "next": "//evil.example/x"},
            follow_redirects=False,
        )
        assert elsewhere.headers["location"] == "/"
        logged_out = client.post("/logout", follow_redirects=False)
        assert logged_out.status_code == 303
        assert client.get("/api/files").status_code == 401


def test_changing_the_password_ends_sessions(tmp_path: Path) -> None:
    with running_app(tmp_path, password=PASSWORD) as app:
        app.client.post("/login", data={"password": PASSWORD}, follow_redirects=False)
        cookie = app.client.cookies[auth.SESSION_COOKIE]
    with running_app(tmp_path, password="a new one") as app:
        app.client.cookies.set(auth.SESSION_COOKIE, cookie)
        assert app.client.get("/api/files").status_code == 401


def test_wrong_passwords_are_refused_slowed_then_locked_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(auth, "FIRST_DELAY_SECONDS", 0.2)
    monkeypatch.setattr(auth, "LOCKOUT_FAILURES", 4)
    with running_app(tmp_path, password=PASSWORD) as app:
        timings = []
        for attempt in range(3):
            started = time.monotonic()
            if attempt == 1:
                response = app.client.post("/login", data={"password": "guess"})
            else:
                response = app.client.get("/api/files", headers={"Authorization": "Bearer guess"})
            timings.append(time.monotonic() - started)
            assert response.status_code == 401
        assert timings[0] >= 0.2 and timings[1] >= 0.4 and timings[2] >= 0.8
        assert (
            app.client.get("/api/files", headers={"Authorization": "Bearer x"}).status_code == 401
        )
        # Locked out now: even the right password waits for the failures to age out.
        locked = app.client.get("/api/files", headers={"Authorization": f"Bearer {PASSWORD}"})
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        form = app.client.post("/login", data={"password": PASSWORD})
        assert form.status_code == 429
        assert app.client.get("/healthz").status_code == 200


def test_tokens_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "pyfiledrop.toml"
    config.write_text('password = "pw"\ntokens = ["one", "two"]\n')
    loaded = load_settings({"config": str(config)}, environ={})
    assert loaded.settings.password == "pw"
    assert loaded.settings.tokens == ("one", "two")
    from_env = load_settings({}, environ={"PYFILEDROP_TOKENS": "a, b"}, cwd=tmp_path / "none")
    assert from_env.settings.tokens == ("a", "b")


def test_password_over_real_http(server_factory: ServerFactory) -> None:
    server = server_factory("-a", "--password", PASSWORD)
    assert httpx.get(f"{server.url}/healthz").status_code == 200
    assert httpx.put(f"{server.url}/put/r.txt", content=b"r").status_code == 401
    headers = {"Authorization": f"Bearer {PASSWORD}"}
    created = httpx.put(f"{server.url}/put/r.txt", content=b"r", headers=headers)
    assert created.status_code == 201
    assert httpx.get(created.json()["url"]).content == b"r"  # absolute in the PUT answer
    assert server.stored_files() == [server.storage_dir / "r.txt"]
