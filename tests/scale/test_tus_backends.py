"""tus on every backend: the lock and offsets in PostgreSQL too; refused outright on S3."""

from __future__ import annotations

import hashlib

import httpx

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
