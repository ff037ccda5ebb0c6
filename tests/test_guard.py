"""The disk guard and quotas: refused with 507 before any byte is written."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pyfiledrop.meta import queries
from tests.conftest import ServerFactory, random_file, sha256_of
from tests.dz import send_chunk, upload
from tests.harness import App, put, running_app

MiB = 1024 * 1024


def nothing_written(app: App) -> None:
    assert list(app.settings.storage.iterdir()) == []
    assert list(app.settings.chunks.iterdir()) == []
    assert app.uploads.db.run_sync(queries.receiving_uploads) == []


def test_first_chunk_that_would_cross_min_free_is_refused(tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.bin", 3 * MiB)
    free = 100 * MiB
    with running_app(tmp_path / "app", free_bytes=lambda: free, min_free=98 * MiB) as app:
        app.client.get("/healthz")
        refused = send_chunk(app.client, source, str(uuid.uuid4()), 0, MiB)
        assert refused.status_code == 507
        body = refused.json()
        assert body["code"] == "insufficient_storage"
        # The limit, not the free bytes: those would tell what others store.
        assert (
            body["error"] == "not enough space on the server for 3.0 MiB (it keeps 98.0 MiB free)"
        )
        assert set(body) == {"error", "code", "min_free"}
        nothing_written(app)
        put_refused = app.client.put("/put/big.bin", content=source.read_bytes())
        assert put_refused.status_code == 507
        nothing_written(app)
        free = 101 * MiB  # room for it now
        record = upload(app.client, source, MiB, in_flight=1)
        assert record["sha256"] == sha256_of(source)


def test_stream_of_unknown_size_is_stopped_at_min_free(tmp_path: Path) -> None:
    with running_app(tmp_path, free_bytes=lambda: 10 * MiB, min_free=9 * MiB) as app:

        def body() -> Iterator[bytes]:
            for _ in range(8):
                yield os.urandom(MiB)

        refused = app.client.put("/put/stream.bin", content=body())  # chunked: no length
        assert refused.status_code == 507
        nothing_written(app)


def test_quota_and_owner_quota(tmp_path: Path) -> None:
    with running_app(tmp_path, quota=10_000, owner_quota=6_000) as app:
        put(app.client, "a.bin", os.urandom(5_000))
        over_owner = app.client.put("/put/b.bin", content=os.urandom(2_000))
        assert over_owner.status_code == 507
        assert over_owner.json()["code"] == "over_quota"
        assert "your quota" in over_owner.json()["error"]
        other = app.other_client()
        put(other, "c.bin", os.urandom(4_000))
        over_all = other.put("/put/d.bin", content=os.urandom(2_000))
        assert over_all.status_code == 507 and "server's storage quota" in over_all.json()["error"]
        assert "used" not in over_all.json()  # what all owners store is not the uploader's business
        # An upload of unknown size is stopped once it passes the quota, and leaves nothing.
        multipart = other.post("/upload", files={"file": ("e.bin", os.urandom(3_000))})
        assert multipart.status_code == 507
        assert sorted(p.name for p in app.settings.storage.iterdir()) == ["a.bin", "c.bin"]
        # Deleting frees the owner's quota.
        first = app.client.get("/api/files").json()["files"][0]
        assert app.client.delete(f"/api/files/{first['id']}").status_code == 200
        put(app.client, "b.bin", os.urandom(2_000))


@contextlib.contextmanager
def small_filesystem(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only), unmounted afterwards."""
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"can't mount tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_min_free_on_a_small_filesystem_over_http(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """64 MiB filesystem, 16 MiB kept free: a 30 MiB upload in progress (active) reserves its
    unwritten bytes, so a second 30 MiB upload is refused at its first chunk."""
    first = random_file(tmp_path / "first.bin", 30 * MiB)
    second = random_file(tmp_path / "second.bin", 30 * MiB)
    third = random_file(tmp_path / "third.bin", 10 * MiB)
    with small_filesystem(tmp_path / "small", "64m") as fs:
        server = server_factory(
            "-a", "--min-free", "16MiB", "--storage", str(fs / "s"), "--chunks", str(fs / "c")
        )
        try:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                client.get("/healthz")
                first_id = str(uuid.uuid4())
                assert send_chunk(client, first, first_id, 0, 8 * MiB).status_code == 200
                refused = send_chunk(client, second, str(uuid.uuid4()), 0, 8 * MiB)
                assert refused.status_code == 507, refused.text
                assert "(it keeps 16.0 MiB free)" in refused.json()["error"]
                assert [p.name for p in (fs / "c").iterdir()] == [f"{first_id}.part"]
                record = upload(client, first, 8 * MiB, upload_id=first_id, order=[1, 2, 3])
                assert record["sha256"] == sha256_of(first)
                small = upload(client, third, 8 * MiB)
                assert small["sha256"] == sha256_of(third)
                assert sorted(p.name for p in (fs / "s").iterdir()) == ["first.bin", "third.bin"]
        finally:
            server.stop()
