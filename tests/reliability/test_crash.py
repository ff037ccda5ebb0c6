"""Crashes: the server SIGKILLed under 20 concurrent uploads, and clients cut off mid-chunk."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.meta import queries
from tests.conftest import random_file, sha256_of
from tests.dz import send_chunk
from tests.inproc import app_client

MiB = 1024 * 1024


def test_failure_between_publishing_and_recording_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is linked into storage, then recording it fails (a crash, a database error):
    the next finish must still find the bytes and publish the same exact file, once."""
    real_publish = queries.publish
    calls: list[str] = []

    def fail_first(connection: Any, *args: Any) -> None:
        calls.append("publish")
        if len(calls) == 1:
            raise sqlite3.OperationalError("disk I/O error")
        real_publish(connection, *args)

    monkeypatch.setattr(queries, "publish", fail_first)
    source = random_file(tmp_path / "linked.bin", 3 * MiB + 5)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app") as client:
        client.get("/healthz")
        for index in range(3):
            assert send_chunk(client, source, upload_id, index, MiB).status_code == 200
        failed = send_chunk(client, source, upload_id, 3, MiB)
        assert failed.status_code == 500
        finish = client.post(f"/upload/{upload_id}/finish")
        assert finish.status_code == 200, finish.text
        again = client.post(f"/upload/{upload_id}/finish")
    record = finish.json()["file"]
    assert again.json()["file"]["id"] == record["id"]
    storage = tmp_path / "app" / "storage"
    assert [p.name for p in storage.iterdir()] == ["linked.bin"]
    assert record["sha256"] == sha256_of(source) == sha256_of(storage / "linked.bin")
    assert list((tmp_path / "app" / "chunks").iterdir()) == []
