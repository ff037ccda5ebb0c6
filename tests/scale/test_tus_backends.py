"""tus on every backend: the lock and offsets in PostgreSQL too; refused outright on S3."""

from __future__ import annotations

import hashlib
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.scale.conftest import Backend

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


def test_tus_upload_and_concatenation(backend: Backend) -> None:
    server = backend.start()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post("/files/", headers={**TUS, "Upload-Length": "11"})
        if backend.s3 is not None:
            assert created.status_code == 404
            assert "S3" in created.json()["error"]
            assert client.options("/files/").status_code == 404
            return
        url = created.headers["location"]
        assert (
            client.patch(
                url, content=b"hello", headers={**OCTETS, "Upload-Offset": "0"}
            ).status_code
            == 204
        )
        assert (
            client.patch(url, content=b"x", headers={**OCTETS, "Upload-Offset": "0"}).status_code
            == 409
        )
        done = client.patch(url, content=b" world", headers={**OCTETS, "Upload-Offset": "5"})
        assert done.headers["x-pyfiledrop-sha256"] == hashlib.sha256(b"hello world").hexdigest()
        parts = []
        for piece in (b"con", b"cat"):
            part = client.post(
                "/files/", headers={**TUS, "Upload-Length": "3", "Upload-Concat": "partial"}
            ).headers["location"]
            client.patch(part, content=piece, headers={**OCTETS, "Upload-Offset": "0"})
            parts.append(part)
        final = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
        assert final.status_code == 201
        assert final.headers["x-pyfiledrop-sha256"] == hashlib.sha256(b"concat").hexdigest()
    assert backend.leftovers() == []


@pytest.mark.parametrize("backend", ["disk+sqlite", "disk+postgres"], indirect=True)
def test_a_stalled_patch_on_one_process_is_taken_over_from_another(
    backend: Backend, tmp_path: Path
) -> None:
    """The holder is in another process: the newcomer's request reaches it through the lock row,
    which the holder's keeper looks at twice a second."""
    shared = tmp_path / "shared"
    flags = ["--storage", str(shared / "storage"), "--chunks", str(shared / "chunks")]
    if backend.database is None:
        flags += ["--data", str(shared / "data")]  # SQLite on one host: one file, WAL
    first, second = backend.start(*flags), backend.start(*flags)
    data = bytes(range(256)) * 1200
    with httpx.Client(base_url=second.url, timeout=30) as client:
        url = client.post("/files/", headers={**TUS, "Upload-Length": str(len(data))}).headers[
            "location"
        ]
        path = urlsplit(url).path
        stalled = socket.create_connection(("127.0.0.1", first.port), timeout=30)
        stalled.sendall(
            (
                f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
                f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                f"Content-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data[:100_000]
        )
        deadline = time.monotonic() + 20
        while client.head(path, headers=TUS).headers["upload-offset"] != "100000":
            assert time.monotonic() < deadline, "the stalled PATCH saved nothing"
            time.sleep(0.05)
        started = time.monotonic()
        rest = client.patch(
            path, content=data[100_000:], headers={**OCTETS, "Upload-Offset": "100000"}
        )
        took = time.monotonic() - started
        assert rest.status_code == 204, rest.text
        assert took < 5, f"the takeover took {took:.1f} s"
        assert rest.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()
        assert stalled.recv(4096).startswith(b"HTTP/1.1 423")
        stalled.close()
    stored = [p for p in (shared / "storage").iterdir() if not p.name.startswith(".")]
    assert [p.read_bytes() for p in stored] == [data]
    assert list((shared / "chunks").iterdir()) == []
