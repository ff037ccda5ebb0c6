"""S3 storage specifics: part size at start and per chunk, no orphaned parts, checks, presigning."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyfiledrop.config import S3Location, load_settings
from pyfiledrop.storage.s3 import MAX_PARTS, S3PartSink, S3Storage, StorageError
from tests.conftest import random_file, sha256_of
from tests.dz import chunk_fields, send_chunk, upload
from tests.harness import running_app
from tests.scale.conftest import Backend

MiB = 1024 * 1024
CHUNK = 5 * MiB
HOUR = 3600


@pytest.fixture
def s3(server_factory: Any, postgres_url: str, s3_endpoint: Any) -> Backend:
    found = Backend("s3+postgres", server_factory, database=postgres_url, s3=s3_endpoint)
    found.bucket = s3_endpoint.create_bucket()
    return found


def serve_once(
    tmp_path: Path, s3: Backend, storage: str, chunk_size: str
) -> subprocess.CompletedProcess[str]:
    """`pyfiledrop serve` on `storage` against the test endpoint, for a start that is refused."""
    assert s3.s3 is not None
    command = [
        sys.executable, "-m", "pyfiledrop", "serve", "--storage", storage,
        "--s3-endpoint", s3.s3.url, "--chunk-size", chunk_size, "--data", "data",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=tmp_path, env={**s3.env(), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_chunk_size_under_five_mib_is_refused_at_start(tmp_path: Path, s3: Backend) -> None:
    result = serve_once(tmp_path, s3, f"s3://{s3.bucket}/x", "1MiB")
    assert result.returncode == 2
    assert "5 MiB" in result.stderr and "--chunk-size" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_bucket_is_refused_at_start(tmp_path: Path, s3: Backend) -> None:
    result = serve_once(tmp_path, s3, "s3://no-such-bucket-here/x", "8MiB")
    assert result.returncode == 2
    assert "s3://no-such-bucket-here/x" in result.stderr and "Traceback" not in result.stderr


def test_small_chunks_from_a_client_are_refused(s3: Backend, tmp_path: Path) -> None:
    server = s3.start()
    source = random_file(tmp_path / "small.bin", 3 * MiB)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        response = send_chunk(client, source, str(uuid.uuid4()), 0, MiB)
        assert response.status_code == 400
        assert "at least" in response.json()["error"]
        single = upload(client, source, 4 * MiB)  # one chunk of any size is one (last) part
    assert single["sha256"] == sha256_of(source)
    assert s3.leftovers() == []


def first_chunk_request(cookie: str, upload_id: str, name: str) -> tuple[bytes, bytes]:
    """A raw POST /upload of chunk 0 of a two-chunk file, up to where the chunk's bytes go, and
    the closing line that follows them (Content-Length counts a whole chunk)."""
    boundary = "rawb0undary"
    fields = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in chunk_fields(upload_id, 0, CHUNK, 2 * CHUNK).items()
    ) + (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n')
    tail = f"\r\n--{boundary}--\r\n".encode()
    request = (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: pfd_owner={cookie}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(fields) + CHUNK + len(tail)}\r\n\r\n"
    )
    return (request + fields).encode(), tail


def test_cut_chunk_counts_nothing_and_is_resent(s3: Backend, tmp_path: Path) -> None:
    server = s3.start()
    source = random_file(tmp_path / "cut.bin", 2 * CHUNK)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert send_chunk(client, source, upload_id, 1, CHUNK).status_code == 200
        cookie = client.cookies["pfd_owner"]
        start, _ = first_chunk_request(cookie, upload_id, "cut.bin")
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(start + b"\xee" * (2 * MiB))
            wait_for_chunk_requests(server, 2)  # the cut comes while the server reads the chunk
        assert client.get(f"/upload/{upload_id}").json()["received"] == [1]
        last = send_chunk(client, source, upload_id, 0, CHUNK).json()
    assert last["status"] == "done"
    assert last["file"]["sha256"] == sha256_of(source)
    assert s3.leftovers() == []


def test_abandoned_and_orphaned_multipart_uploads_are_aborted(
    s3: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process with the fake clock: the uploads idle past `--abandon-after` without waiting."""
    assert s3.s3 is not None and s3.bucket is not None
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    source = random_file(tmp_path / "left.bin", 3 * CHUNK)
    settings = {
        "storage": S3Location(s3.bucket, "files"),
        "s3_endpoint": s3.s3.url,
        "database": s3.database,
        "abandon_after": HOUR,
    }
    with running_app(tmp_path / "app", **settings) as app:
        upload_id = upload(app.client, source, CHUNK, order=[0, 2], finish=False)["id"]
        key = f"files/{uuid.uuid4()}/x"  # a multipart upload the database knows nothing of
        orphan = s3.s3_client().create_multipart_upload(Bucket=s3.bucket, Key=key)
        assert len(s3.leftovers()) == 2
        app.run(app.uploads.remove_abandoned)
        # The orphan goes at once: moto dates every multipart upload in 2010 (real S3 gives the
        # true date). The upload, active by the app's clock, stays until it idles.
        (left,) = s3.leftovers()
        assert upload_id in left
        app.clock.advance(2 * HOUR)
        app.run(app.uploads.remove_abandoned)
        assert s3.leftovers() == []
        assert orphan["UploadId"]
        assert app.client.get(f"/upload/{upload_id}").status_code == 404
    assert s3.objects() == []


def test_presigned_download_redirects_to_the_object(s3: Backend, tmp_path: Path) -> None:
    server = s3.start("-a", "--s3-presign")
    source = random_file(tmp_path / "presign é.bin", CHUNK + 1)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        record = upload(client, source, CHUNK)
        response = client.get(record["url"])
        assert response.status_code == 302
        target = response.headers["location"]
        assert target.startswith(s3.s3.url if s3.s3 else "")
        fetched = httpx.get(target, timeout=60)
    assert fetched.status_code == 200
    assert fetched.content == source.read_bytes()
    assert "attachment" in fetched.headers.get("content-disposition", "")


class _WrongEtagClient:
    """Answers every part with an ETag that is not the MD5 of what was sent."""

    def upload_part(self, Body: Any, ContentLength: int, **_: Any) -> dict[str, str]:
        while Body.read(65536):
            pass
        return {"ETag": '"' + "0" * 32 + '"'}


class _BreaksOffClient:
    """Takes the first MiB of a part, then fails, as a store that drops the connection."""

    def upload_part(self, Body: Any, ContentLength: int, **_: Any) -> dict[str, str]:
        taken = 0
        while taken < MiB:
            taken += len(Body.read(65536))
        raise ConnectionResetError("the store went away")


class _Stub:
    bucket = "b"

    def __init__(self, client: Any = None) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.client = client or _WrongEtagClient()
        self.executor = ThreadPoolExecutor(2)
        self.recorded: list[Any] = []
        self.books = self

    async def record_part(self, *args: Any) -> None:
        self.recorded.append(args)

    async def completed_meanwhile(self, upload_id: str) -> bool:
        return False


def test_part_whose_etag_is_not_its_md5_does_not_count() -> None:
    async def send() -> None:
        stub = _Stub()
        sink = S3PartSink(stub, "u", "mpu", "k", 1, 3 * MiB)  # type: ignore[arg-type]
        for _ in range(3):
            await sink.write(b"x" * MiB)
        try:
            with pytest.raises(StorageError):
                await sink.finish()
            assert stub.recorded == []
        finally:
            stub.executor.shutdown()

    asyncio.run(asyncio.wait_for(send(), 30))


def test_a_store_breaking_off_fails_the_chunk_without_hanging() -> None:
    async def send() -> None:
        stub = _Stub(_BreaksOffClient())
        sink = S3PartSink(stub, "u", "mpu", "k", 1, 64 * MiB)  # type: ignore[arg-type]
        try:
            with pytest.raises(StorageError):
                for _ in range(64):
                    await sink.write(b"y" * MiB)
                await sink.finish()
            assert stub.recorded == []
        finally:
            await sink.abort()
            stub.executor.shutdown()

    asyncio.run(asyncio.wait_for(send(), 30))


@pytest.mark.parametrize("max_size_mib", [100, 100_000, 2 * 1024 * 1024])
def test_stream_parts_fit_any_allowed_size_in_s3s_part_limit(
    tmp_path: Path, max_size_mib: int
) -> None:
    settings = load_settings(
        {"storage": "s3://bkt/p", "max_size": str(max_size_mib)}, environ={}, cwd=tmp_path
    ).settings
    storage = S3Storage(settings, books=None, client=object())  # type: ignore[arg-type]
    try:
        assert storage.stream_part_bytes >= 8 * MiB
        assert storage.stream_part_bytes * MAX_PARTS >= settings.max_size_bytes
    finally:
        storage.close()


def wait_for_chunk_requests(server: Any, count: int) -> None:
    deadline = time.monotonic() + 30
    while server.health()["chunk_requests"] < count:
        assert time.monotonic() < deadline, "the server never began the chunk"
        time.sleep(0.02)


def test_duplicate_chunk_outlived_by_the_completion_is_harmless(
    s3: Backend, tmp_path: Path
) -> None:
    """A copy of a chunk sent while another copy streams its part to S3: the chunk has one
    writer, so the second copy waits (uploading no part; S3 would let it replace the first) and
    is answered "duplicate" once the first counts, which also completes the file."""
    server = s3.start("-a")
    source = random_file(tmp_path / "late.bin", 2 * CHUNK)
    upload_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/healthz")
        cookie = client.cookies["pfd_owner"]
        start, tail = first_chunk_request(cookie, upload_id, "late.bin")
        chunk = source.read_bytes()[:CHUNK]
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as raw:
            raw.sendall(start + chunk[: CHUNK // 2])
            wait_for_chunk_requests(server, 1)  # the first copy is streaming its part
            copies: list[httpx.Response] = []
            second = threading.Thread(
                target=lambda: copies.append(send_chunk(client, source, upload_id, 0, CHUNK))
            )
            second.start()
            wait_for_chunk_requests(server, 2)  # the second copy waits for the first
            assert send_chunk(client, source, upload_id, 1, CHUNK).status_code == 200
            raw.sendall(chunk[CHUNK // 2 :] + tail)
            answer = raw.recv(65536).decode("latin-1")
            second.join(60)
        record = client.post(f"/upload/{upload_id}/finish").json()["file"]
    assert answer.startswith("HTTP/1.1 200"), answer
    assert copies[0].status_code == 200 and copies[0].json()["status"] == "duplicate"
    assert record["sha256"] == sha256_of(source)
    assert s3.leftovers() == []
