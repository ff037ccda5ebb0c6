"""The server's log, read from a real `pyfiledrop serve`: an access line per request (no secrets in
it), and a line for each upload start, refusal, auth failure, lockout, download and delete."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyfiledrop.logs import loggable_path, printable, ref
from pyfiledrop.web import auth
from tests.conftest import Server, ServerFactory, random_file
from tests.dz import send_chunk

PASSWORD = "correct-horse-battery"
AUTH = {"Authorization": f"Bearer {PASSWORD}"}
LOG_WAIT_SECONDS = 10.0


def wait_for_log(server: Server, needle: str) -> str:
    """The access line is written as the answer completes: poll the file for it, bounded."""
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        text = server.log_path.read_text()
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def upload_refuse_fail_download_delete(server: Server, tmp_path: Path) -> dict[str, Any]:
    source = random_file(tmp_path / "report.bin", 50_000)
    with httpx.Client(base_url=server.url, timeout=30, headers=AUTH) as client:
        stored = client.put("/put/report.bin", content=source.read_bytes()).json()
        too_big = {"dztotalfilesize": str(2 * 1024**2), "dztotalchunkcount": "2"}
        refused_id = str(uuid.uuid4())
        refused = send_chunk(client, source, refused_id, 0, 1024**2, fields=too_big)
        assert refused.status_code == 413
        assert client.get(stored["url"]).status_code == 200
        token = stored["delete_token"]
        gone = client.delete(f"/api/files/{stored['id']}?token={token}", headers={"Cookie": ""})
        assert gone.status_code == 200
    failed = httpx.post(f"{server.url}/login", data={"password": "wrong", "next": "/"}, timeout=30)
    assert failed.status_code == 401
    wrong_bearer = httpx.get(
        f"{server.url}/api/files", headers={"Authorization": "Bearer nope"}, timeout=30
    )
    assert wrong_bearer.status_code == 401
    result: dict[str, Any] = {**stored, "refused_upload": refused_id}
    return result


def test_text_log_after_an_upload_a_refusal_and_a_failed_login(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory("-a", "--max-size", "1", "--password", PASSWORD)
    stored = upload_refuse_fail_download_delete(server, tmp_path)
    text = wait_for_log(server, "GET /api/files 401")
    lines = text.splitlines()

    def one(*parts: str) -> str:
        found = [line for line in lines if all(part in line for part in parts)]
        assert len(found) == 1, (parts, text[-3000:])
        return found[0]

    started = one("upload", "started (stream, 50000 bytes")
    put_id = started.split("upload ")[1].split()[0]
    one(f"upload {put_id} stored as file {ref(stored['id'])} 'report.bin' (50000 bytes")
    one("127.0.0.1 PUT /put/report.bin 201 in=50000 out=", f"upload={put_id}")
    refused = stored["refused_upload"]
    one(f"refused POST /upload from 127.0.0.1 (upload {refused}): 413 too_large")
    one("127.0.0.1 POST /upload 413", f"upload={refused} too_large")
    one("auth failure from 127.0.0.1 on /login (1 in 15 min)")
    one("auth failure from 127.0.0.1 on /api/files (2 in 15 min)")
    one("127.0.0.1 POST /login 401")
    one("127.0.0.1 GET /api/files 401", "unauthorized")
    short = ref(stored["id"])
    one(f"download of file {short} 'report.bin'")
    one(f"127.0.0.1 GET /download/{short} 200 in=0 out=50000")
    one(f"removed file {short} 'report.bin': deleted")
    one(f"127.0.0.1 DELETE /api/files/{short} 200")
    # Capabilities never reach the log: not the file's id, not its delete token, not the password.
    for secret in (stored["id"], stored["delete_token"], PASSWORD):
        assert secret not in text


def test_json_lines_carry_the_same_fields(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory("-a", "--max-size", "1", "--password", PASSWORD, "--log-format", "json")
    stored = upload_refuse_fail_download_delete(server, tmp_path)
    text = wait_for_log(server, '"/api/files", "status": 401')
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    access = [e for e in entries if e["logger"] == "pyfiledrop.access"]
    put = next(e for e in access if e["method"] == "PUT")
    assert put["path"] == "/put/report.bin" and put["status"] == 201
    assert put["bytes_in"] == 50_000 and put["client"] == "127.0.0.1" and put["seconds"] >= 0
    refused = next(e for e in access if e["status"] == 413)
    assert refused["code"] == "too_large" and refused["path"] == "/upload"
    assert refused["upload"] == stored["refused_upload"]
    assert any(e["path"] == "/login" and e["status"] == 401 for e in access)
    messages = [e["message"] for e in entries if e["logger"] == "pyfiledrop"]
    assert any(m.startswith("auth failure from 127.0.0.1 on /login") for m in messages)
    assert any(m.startswith(f"download of file {ref(stored['id'])}") for m in messages)
    assert stored["id"] not in text and stored["delete_token"] not in text


def test_lockout_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    throttle = auth.Throttle()  # in-process: ten real failures would wait out a minute of delays
    with caplog.at_level(logging.WARNING, logger="pyfiledrop"):
        for _ in range(auth.LOCKOUT_FAILURES + 2):
            throttle.fail("192.0.2.7", "/api/files")
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("locked out 192.0.2.7 for 15 min after 10 wrong passwords") == 1
    assert sum(m.startswith("auth failure from 192.0.2.7 on /api/files") for m in messages) == 12


def test_paths_lose_ids_and_control_characters() -> None:
    file_id = "AbCdEfGh" + "x" * 16
    assert loggable_path(f"/download/{file_id}") == "/download/AbCdEfGh…"
    assert loggable_path(f"/api/files/{file_id}") == "/api/files/AbCdEfGh…"
    assert loggable_path("/put/a\r\nFAKE 200") == "/put/a\\x0d\\x0aFAKE 200"
    assert printable("x" * 1000).endswith("…") and len(printable("x" * 1000)) < 400


def test_expiry_is_logged_with_the_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pyfiledrop import lifecycle
    from tests.harness import put, running_app

    with running_app(tmp_path, expire_after=3600) as app:
        record = put(app.client, "report.pdf", b"x" * 1000)
        app.clock.advance(3600)
        with caplog.at_level(logging.INFO, logger="pyfiledrop"):
            app.run(lifecycle.purge, app.uploads.db, app.uploads.storage, app.clock())
    messages = [r.getMessage() for r in caplog.records]
    assert f"removed file {ref(str(record['id']))} 'report.pdf': expired" in messages
    assert not any(str(record["id"]) in message for message in messages)


def test_the_client_address_is_one_name_per_client() -> None:
    from pyfiledrop.web.watch import client_address

    assert client_address({"client": ("::ffff:192.0.2.9", 5000)}) == "192.0.2.9"
    assert client_address({"client": ("2001:db8::1", 5000)}) == "2001:db8::1"
    assert client_address({"client": ("192.0.2.9", 5000)}) == "192.0.2.9"
    assert client_address({}) == "unknown"
