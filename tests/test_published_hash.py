"""The recorded SHA-256 is the hash of the bytes on disk at publish (issue 12, must-do 4): hashed
inline as in-order chunks are written, the partial cut to its size, and dedup only onto files
whose bytes can't differ from their record."""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop import hash_lane, tus_uploads
from pyfiledrop.meta import queries
from tests.dz import chunk_fields
from tests.harness import App, put, running_app

MiB = 1024 * 1024


def send(app: App, upload_id: str, index: int, data: bytes, total: int) -> dict[str, Any]:
    response = app.client.post(
        "/upload",
        data=chunk_fields(upload_id, index, MiB, total),
        files={"file": ("f.bin", data[index * MiB : (index + 1) * MiB])},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def recorded_read_backs(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The (start, end) of every range the store reads back to hash, from now on."""
    read_back: list[tuple[int, int]] = []
    real = app.uploads.storage.hash_partial

    async def counting(upload_id: str, hasher: Any, start: int, end: int) -> None:
        read_back.append((start, end))
        await real(upload_id, hasher, start, end)

    monkeypatch.setattr(app.uploads.storage, "hash_partial", counting)
    return read_back


def test_in_order_chunks_are_hashed_as_written_not_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(4 * MiB + 1000)
    with running_app(tmp_path) as app:
        read_back = recorded_read_backs(app, monkeypatch)
        upload_id = str(uuid.uuid4())
        for index in range(5):
            answer = send(app, upload_id, index, data, len(data))
        assert answer["file"]["sha256"] == sha256(data)
        assert read_back == []
        # Out of order, the gaps are read back, and the hash is still the file's.
        other = os.urandom(3 * MiB)
        other_id = str(uuid.uuid4())
        for index in (1, 0, 2):
            answer = send(app, other_id, index, other, len(other))
        assert answer["file"]["sha256"] == sha256(other)
        assert read_back  # chunk 1 came before chunk 0: it was read back


def test_the_next_tus_write_does_not_wait_for_the_hash_of_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client sends nothing between a PATCH and its answer, so neither the answer nor the next
    write waits for the hash (hash_lane.py): the upload's lane outlives a write, the next write
    at its end goes on adding to it while the bytes before are still being hashed; only the
    finish waits for them, and the file's hash is still made as the bytes were written."""
    data = os.urandom(3 * MiB + 1000)
    hashing = threading.Event()
    gave_up = threading.Event()  # the held hash waited in vain: some request waited for it
    real_update = hash_lane._update

    def held(hasher: Any, pieces: list[Any]) -> None:
        if not hashing.wait(3):
            gave_up.set()
        real_update(hasher, pieces)

    monkeypatch.setattr(hash_lane, "_update", held)
    tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    with running_app(tmp_path) as app:
        read_back = recorded_read_backs(app, monkeypatch)
        created = app.client.post("/files/", headers={**tus, "Upload-Length": str(len(data))})
        url = created.headers["location"]
        # 1.5 MiB then 0.25: the lane's first batch is held in its thread, and the second write
        # stays within what the lane may queue behind it (LANE_QUEUE_BYTES).
        cuts = [0, 3 * MiB // 2, 7 * MiB // 4]
        for start, end in itertools.pairwise(cuts):
            answer = app.client.patch(
                url, content=data[start:end], headers={**tus, "Upload-Offset": str(start)}
            )
            assert (answer.status_code, answer.headers["upload-offset"]) == (204, str(end))
        assert not gave_up.is_set()
        hashing.set()
        last = app.client.patch(
            url, content=data[cuts[-1] :], headers={**tus, "Upload-Offset": str(cuts[-1])}
        )
        assert last.headers["x-pyfiledrop-sha256"] == sha256(data)
        assert read_back == []


def test_with_many_tus_writes_at_once_their_hashes_are_not_left_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past HASH_BESIDE_WRITES writes in progress, a write is hashed as the store writes it (no
    lane: its memory stays bounded as before); the file's hash is still made as it was written."""

    def no_lane(hasher: Any, pieces: list[Any]) -> None:
        raise AssertionError("no write should be hashed in a lane here")

    monkeypatch.setattr(hash_lane, "_update", no_lane)
    monkeypatch.setattr(tus_uploads, "HASH_BESIDE_WRITES", 0)
    data = os.urandom(2 * MiB + 1000)
    tus = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    with running_app(tmp_path) as app:
        created = app.client.post("/files/", headers={**tus, "Upload-Length": str(len(data))})
        url = created.headers["location"]
        first = app.client.patch(url, content=data[:MiB], headers={**tus, "Upload-Offset": "0"})
        assert first.status_code == 204
        last = app.client.patch(url, content=data[MiB:], headers={**tus, "Upload-Offset": str(MiB)})
        assert last.headers["x-pyfiledrop-sha256"] == sha256(data)


def test_bytes_past_the_size_are_not_published(tmp_path: Path) -> None:
    data = os.urandom(2 * MiB)
    with running_app(tmp_path) as app:
        upload_id = str(uuid.uuid4())
        send(app, upload_id, 0, data, len(data))
        with app.uploads.storage.partial_path(upload_id).open("ab") as partial:
            partial.write(b"left over past the end" * 1000)  # e.g. a write that was refused
        record = send(app, upload_id, 1, data, len(data))["file"]
        stored = app.settings.local_storage / record["name"]
        assert stored.read_bytes() == data
        assert record["sha256"] == sha256(data)


def deduplicated(app: Any, record: dict[str, Any]) -> bool:
    """Whether a file was stored as a link to another: the operator's knowledge, not in the
    uploader's answer (issue 14)."""
    stored = app.uploads.db.run_sync(queries.get_file, record["id"])
    return stored is not None and stored.linked_from is not None


def test_a_file_changed_on_disk_is_no_dedup_target(tmp_path: Path) -> None:
    data = os.urandom(MiB)
    with running_app(tmp_path) as app:
        first = put(app.client, "first.bin", data)
        # Cut short behind the server's back (a crash of a copy, an operator): it differs now.
        os.truncate(app.settings.local_storage / first["name"], MiB // 2)
        second = put(app.other_client(), "second.bin", data)
        assert not deduplicated(app, second)
        assert app.client.get(second["url"]).content == data


def test_a_file_whose_hash_is_not_trusted_is_no_dedup_target(tmp_path: Path) -> None:
    """Files published before the single-writer fix (hash_trusted = 0) may hold other bytes than
    their hash says: a new upload with that hash is stored on its own, not linked to them."""
    data = os.urandom(MiB)
    with running_app(tmp_path) as app:
        first = put(app.client, "first.bin", data)
        app.uploads.db.run_sync(
            lambda connection: connection.execute(
                "UPDATE files SET hash_trusted = 0 WHERE id = ?", (first["id"],)
            )
        )
        second = put(app.other_client(), "second.bin", data)
        assert not deduplicated(app, second)
        third = put(app.other_client(), "third.bin", data)
        assert deduplicated(app, third)  # onto the second, which is trusted
