"""A full disk: a clear 507, nothing half-written published, others still served, and the upload
finishes once space is freed. A real small filesystem (tmpfs) when the test may mount one, and
faults injected in-process for what a real disk does rarely (writes failing after preallocation)."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import pyfiledrop.guard as guard
import pyfiledrop.storage.local as local_storage
from tests.conftest import Server, ServerFactory, random_file, sha256_of
from tests.dz import send_chunk, upload
from tests.harness import app_client
from tests.rawhttp import head, multipart, stream_until_answered

MiB = 1024 * 1024
FS_SIZE = 64 * MiB


@contextlib.contextmanager
def tmpfs(mount: Path) -> Iterator[Path]:
    """A 64 MiB tmpfs at `mount`, or a skip where mounting is not allowed (not root)."""
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); "
                    "the in-process ENOSPC tests still run")  # fmt: skip
    try:
        for name in ("storage", "chunks"):
            (mount / name).mkdir()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def small_disk(server_factory: ServerFactory) -> Iterator[tuple[Server, Path]]:
    """A server whose storage and chunks folders share a 64 MiB tmpfs (the disk guard set to
    keep nothing free, so what it refuses is what truly does not fit)."""
    server = server_factory("--allow-downloads", "--min-free", "0", start=False)
    with tmpfs(server.root / "fs") as mount:
        try:
            for name in ("storage", "chunks"):
                (server.root / name).symlink_to(mount / name)
            server.start()
            yield server, mount
        finally:
            server.stop()


def fill(mount: Path, leave: int) -> Path:
    """A filler file taking all but `leave` bytes of the filesystem."""
    stats = os.statvfs(mount)
    free = stats.f_bavail * stats.f_frsize
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, free - leave)
    finally:
        os.close(fd)
    return filler


def assert_507(response: Any) -> None:
    assert response.status_code == 507, response.text
    assert response.json()["code"] == "insufficient_storage"
    assert response.json()["error"]


def test_full_disk_refuses_the_first_chunk_then_finishes(
    small_disk: tuple[Server, Path], tmp_path: Path
) -> None:
    server, mount = small_disk
    source = random_file(tmp_path / "big.bin", 32 * MiB)
    small = random_file(tmp_path / "small.bin", MiB)
    filler = fill(mount, leave=20 * MiB)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/healthz")
        assert_507(send_chunk(client, source, upload_id, 0, 4 * MiB))
        # Refused before writing: no partial, no file, and nothing recorded to resume.
        assert list(server.chunks_dir.iterdir()) == []
        assert server.stored_files() == []
        assert client.get(f"/upload/{upload_id}").status_code == 404
        # Others are still served: health, lists, and an upload that fits.
        assert client.get("/healthz").json()["status"] == "ok"
        with httpx.Client(base_url=server.url, timeout=60) as other:
            record = upload(other, small, MiB)
            assert other.get(record["url"]).content == small.read_bytes()
            assert [f["id"] for f in other.get("/api/files").json()["files"]] == [record["id"]]
        filler.unlink()  # space freed: the same upload goes through
        order = list(range(8))
        random.Random(3).shuffle(order)
        done = upload(client, source, 4 * MiB, order=order, upload_id=upload_id)
    assert done["sha256"] == sha256_of(source) == sha256_of(server.storage_dir / "big.bin")
    assert list(server.chunks_dir.iterdir()) == []


def test_disk_filling_during_a_stream_is_refused_and_cleaned_up(
    small_disk: tuple[Server, Path], tmp_path: Path
) -> None:
    """A one-shot upload has no size to preallocate: the disk fills while its bytes stream."""
    server, mount = small_disk
    data = random_file(tmp_path / "stream.bin", 40 * MiB).read_bytes()
    filler = fill(mount, leave=16 * MiB)
    body = multipart([], "stream.bin", data)
    request_head = head(
        "POST", "/upload", {"Content-Type": "multipart/form-data; boundary=rawb0undary"}, len(body)
    )
    pieces = (body[i : i + 256 * 1024] for i in range(0, len(body), 256 * 1024))
    result = stream_until_answered(server.port, request_head, pieces)
    assert result.response is not None
    assert result.response.status == 507
    assert result.response.json()["code"] == "insufficient_storage"
    assert result.sent_when_answered < len(body)
    assert list(server.chunks_dir.iterdir()) == []  # the half-written stream is gone
    assert server.stored_files() == []
    assert server.health()["status"] == "ok"
    filler.unlink()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = client.post("/upload", files={"file": ("stream.bin", data)})
    assert response.status_code == 200, response.text
    assert response.json()["file"]["sha256"] == sha256_of(tmp_path / "stream.bin")


def test_preallocation_failing_on_a_full_disk_is_507(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the disk guard (another writer filled the disk after it looked): posix_fallocate's
    ENOSPC for a chunk's range (allocated as the chunk starts, before its bytes are read) is a
    507 too, nothing counted; the chunk goes through once there is room."""

    async def space_looks_fine(*args: object) -> None:
        return None

    monkeypatch.setattr(guard, "check_space", space_looks_fine)
    source = random_file(tmp_path / "prealloc.bin", 32 * MiB)
    upload_id = str(uuid.uuid4())
    with tmpfs(tmp_path / "fs") as mount:
        filler = fill(mount, leave=2 * MiB)
        overrides = {"storage": mount / "storage", "chunks": mount / "chunks", "min_free": 0}
        with app_client(tmp_path / "app", **overrides) as client:
            client.get("/healthz")
            refused = send_chunk(client, source, upload_id, 0, 4 * MiB)
            assert_507(refused)
            assert "full" in refused.json()["error"]
            assert client.get(f"/upload/{upload_id}").json()["received"] == []
            filler.unlink()
            done = upload(client, source, 4 * MiB, upload_id=upload_id)
        assert sha256_of(mount / "storage" / "prealloc.bin") == sha256_of(source) == done["sha256"]


class DiskFault:
    """ENOSPC from the n-th positional write (or fdatasync) after arming, until disarmed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed_at: int | None = None
        self.calls = 0
        real_pwrite, real_sync = local_storage._pwrite_all, local_storage._fdatasync_file

        def pwrite(*args: Any) -> None:
            self._maybe_fail()
            real_pwrite(*args)

        def sync(*args: Any) -> None:
            self._maybe_fail()
            real_sync(*args)

        monkeypatch.setattr(local_storage, "_pwrite_all", pwrite)
        monkeypatch.setattr(local_storage, "_fdatasync_file", sync)

    def arm(self, after: int = 0) -> None:
        self.calls, self.armed_at = 0, after

    def disarm(self) -> None:
        self.armed_at = None

    def _maybe_fail(self) -> None:
        if self.armed_at is None:
            return
        self.calls += 1
        if self.calls > self.armed_at:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_writes_failing_after_preallocation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Preallocation succeeded but the writes fail (thin provisioning, quotas, NFS, compression):
    the chunk is not counted, nothing is published, and it succeeds when retried."""
    fault = DiskFault(monkeypatch)
    source = random_file(tmp_path / "prealloc.bin", 12 * MiB)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app", min_free=0) as client:
        client.get("/healthz")
        assert send_chunk(client, source, upload_id, 0, 4 * MiB).status_code == 200
        fault.arm()
        assert_507(send_chunk(client, source, upload_id, 1, 4 * MiB))
        assert client.get(f"/upload/{upload_id}").json()["received"] == [0]
        assert client.get("/healthz").status_code == 200
        assert client.get("/api/files").json()["files"] == []
        fault.disarm()
        for index in (2, 1):
            last = send_chunk(client, source, upload_id, index, 4 * MiB)
    assert last.json()["status"] == "done", last.text
    storage = tmp_path / "app" / "storage"
    assert [p.name for p in storage.iterdir()] == ["prealloc.bin"]
    assert sha256_of(storage / "prealloc.bin") == sha256_of(source) == last.json()["file"]["sha256"]


def test_flush_failing_at_finish_is_507_and_finish_can_be_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fdatasync can report ENOSPC too (delayed allocation, NFS): a 507, not a 500, and the
    upload stays complete so a later finish publishes it."""
    fault = DiskFault(monkeypatch)
    source = random_file(tmp_path / "flush.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    with app_client(tmp_path / "app", min_free=0) as client:
        client.get("/healthz")
        assert send_chunk(client, source, upload_id, 0, MiB).status_code == 200
        fault.arm(
            after=1
        )  # the second chunk's write passes (in-process: one batch); the flush fails
        assert_507(send_chunk(client, source, upload_id, 1, MiB))
        assert client.get(f"/upload/{upload_id}").json()["received"] == [0, 1]
        fault.disarm()
        finish = client.post(f"/upload/{upload_id}/finish")
    assert finish.status_code == 200, finish.text
    storage = tmp_path / "app" / "storage"
    assert sha256_of(storage / "flush.bin") == sha256_of(source) == finish.json()["file"]["sha256"]
