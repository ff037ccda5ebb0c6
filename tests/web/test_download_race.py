"""A download racing a delete: either a clean 410 before anything is sent, or the whole file;
never a 200 whose body stops short of its Content-Length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import pyfiledrop.web.downloads as downloads
from pyfiledrop.storage.local import READ_BYTES
from tests.conftest import Server
from tests.harness import app_client


def test_a_file_deleted_before_its_bytes_are_read_is_410_not_a_short_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_admit = downloads.admit_download

    async def admit_then_deleted(uploads: Any, stored: Any, *args: Any, **kwargs: Any) -> Any:
        token = await real_admit(uploads, stored, *args, **kwargs)
        (tmp_path / "storage" / stored.path).unlink()  # the delete lands right here
        return token

    monkeypatch.setattr(downloads, "admit_download", admit_then_deleted)
    with app_client(tmp_path) as client:
        file_id = client.put("/put/a.bin", content=b"x" * 1000).json()["id"]
        answer = client.get(f"/download/{file_id}")
    assert answer.status_code == 410, (answer.status_code, len(answer.content))
    assert answer.json()["reason"] == "missing"


def test_a_started_download_completes_after_a_delete(server: Server) -> None:
    data = bytes(range(256)) * (8 * READ_BYTES // 256)  # more than the socket buffers hold
    with httpx.Client(base_url=server.url, timeout=30) as client:
        record = client.put("/put/b.bin", content=data).json()
        received = b""
        with client.stream("GET", f"/download/{record['id']}") as answer:
            assert answer.status_code == 200
            for piece in answer.iter_bytes():
                if not received:
                    token = {"X-Delete-Token": record["delete_token"]}
                    deleted = client.delete(f"/api/files/{record['id']}", headers=token)
                    assert deleted.status_code == 200, deleted.text
                    assert not (server.storage_dir / "b.bin").exists()
                received += piece
    assert received == data
