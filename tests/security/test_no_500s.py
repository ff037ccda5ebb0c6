"""Inputs and faults that used to answer 500 (and log a traceback): each gets its 4xx, 507 or a
sensible result instead."""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

import pyfiledrop.meta.queries as queries
import pyfiledrop.storage.local as local_storage
from tests.conftest import random_file
from tests.dz import send_chunk
from tests.harness import app_client

TUS = {"Tus-Resumable": "1.0.0"}


def put_file(client: Any, name: str, data: bytes) -> Any:
    return client.put(f"/put/{name}", content=data)


@pytest.mark.parametrize(
    "header",
    ["bytes=" + "9" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "9" * 5000],
)
def test_a_range_with_thousands_of_digits_is_ignored(tmp_path: Path, header: str) -> None:
    with app_client(tmp_path) as client:
        file_id = put_file(client, "r.bin", b"0123456789").json()["id"]
        answer = client.get(f"/download/{file_id}", headers={"Range": header})
    assert answer.status_code == 200, answer.text
    assert answer.content == b"0123456789"


def test_a_concat_url_with_an_unclosed_ipv6_host_is_400(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        answer = client.post(
            "/files/", headers={**TUS, "Upload-Concat": "final;http://[::1/files/x"}
        )
    assert answer.status_code == 400, answer.text


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_no_inode_for_a_partial_is_507(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = os.open

    def open_failing_in_chunks(path: Any, *args: Any, **kwargs: Any) -> int:
        if "chunks" in str(path) and args and args[0] & os.O_CREAT:
            _enospc()
        return real_open(path, *args, **kwargs)

    with app_client(tmp_path, min_free=0) as client:
        client.get("/healthz")
        monkeypatch.setattr(local_storage.os, "open", open_failing_in_chunks)
        source = random_file(tmp_path / "a.bin", 1000)
        answer = send_chunk(client, source, str(uuid.uuid4()), 0, 1000)
    assert answer.status_code == 507, answer.text
    assert list((tmp_path / "storage").iterdir()) == []


def test_no_inode_for_the_link_into_storage_is_507_and_retry_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "a.bin", 1000)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path, min_free=0) as client:
        client.get("/healthz")
        real_link = os.link
        monkeypatch.setattr(local_storage.os, "link", _enospc)
        answer = send_chunk(client, source, upload_id, 0, 1000)
        assert answer.status_code == 507, answer.text
        monkeypatch.setattr(local_storage.os, "link", real_link)
        retried = client.post(f"/upload/{upload_id}/finish")
    assert retried.status_code == 200, retried.text
    assert (tmp_path / "storage" / "a.bin").read_bytes() == source.read_bytes()


def test_a_dangling_symlink_with_the_name_is_skipped(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        (tmp_path / "storage" / "a.bin").symlink_to(tmp_path / "nowhere")
        answer = put_file(client, "a.bin", b"data")
    assert answer.status_code == 201, answer.text
    assert (tmp_path / "storage" / "a (1).bin").read_bytes() == b"data"
    assert (tmp_path / "storage" / "a.bin").is_symlink()


def test_database_full_at_publishing_is_507_and_releases_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "a.bin", 1000)
    upload_id = str(uuid.uuid4())
    real_publish = queries.publish
    failures = [1]

    def publish(*args: Any) -> Any:
        if failures:
            failures.pop()
            raise sqlite3.OperationalError("database or disk is full")
        return real_publish(*args)

    monkeypatch.setattr(queries, "publish", publish)
    with app_client(tmp_path, min_free=0) as client:
        answer = send_chunk(client, source, upload_id, 0, 1000)
        assert answer.status_code == 507, answer.text
        assert "full" in answer.json()["error"]
        retried = client.post(f"/upload/{upload_id}/finish")  # not held by a stale lease
    assert retried.status_code == 200, retried.text
