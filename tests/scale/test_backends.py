"""The Dropzone and PUT paths on every backend, checked through the API and the stored bytes."""

from __future__ import annotations

import hashlib
import random
import uuid
from pathlib import Path

import httpx

from tests.conftest import Server, random_file, sha256_of
from tests.dz import race_last_chunk_with_finishes, send_chunk, upload
from tests.scale.conftest import Backend

MiB = 1024 * 1024
CHUNK = 5 * MiB  # S3's smallest part


def client_for(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def downloaded_sha256(client: httpx.Client, record: dict[str, object]) -> str:
    digest = hashlib.sha256()
    with client.stream("GET", str(record["url"])) as response:
        assert response.status_code == 200
        for piece in response.iter_bytes():
            digest.update(piece)
    return digest.hexdigest()


def test_shuffled_duplicated_chunks_download_exact(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a")
    source = random_file(tmp_path / "shuffled.bin", 3 * CHUNK + 777)
    order = list(range(4)) * 2
    random.Random(3).shuffle(order)
    with client_for(server) as client:
        # moto under load sometimes drops a streamed part (botocore can't replay it): the
        # server answers 5xx for that chunk and, like every real client, the test resends it.
        record = upload(client, source, CHUNK, order=order, in_flight=4, retries=2)
        assert record["sha256"] == sha256_of(source)
        assert downloaded_sha256(client, record) == record["sha256"]
        ranged = client.get(str(record["url"]), headers={"Range": f"bytes={CHUNK - 5}-{CHUNK + 4}"})
        assert ranged.status_code == 206
        with source.open("rb") as handle:
            handle.seek(CHUNK - 5)
            assert ranged.content == handle.read(10)
        listed = client.get("/api/files").json()["files"]
    assert [entry["id"] for entry in listed] == [record["id"]]
    assert len(backend.objects()) == 1
    assert backend.leftovers() == []


def test_resume_after_sigkill(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a")
    source = random_file(tmp_path / "crash.bin", 3 * CHUNK + 1)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        for index in (3, 1):
            assert send_chunk(client, source, upload_id, index, CHUNK).status_code == 200
        cookies = dict(client.cookies)
    server.restart()
    with httpx.Client(base_url=server.url, timeout=60, cookies=cookies) as client:
        assert client.get(f"/upload/{upload_id}").json()["received"] == [1, 3]
        record = upload(client, source, CHUNK, order=[0, 2], upload_id=upload_id)
        assert record["sha256"] == sha256_of(source)
        assert downloaded_sha256(client, record) == record["sha256"]
    assert backend.leftovers() == []


def test_finish_racing_last_chunk_publishes_once(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a")
    source = random_file(tmp_path / "race.bin", 2 * CHUNK + 10)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        for index in (0, 1):
            send_chunk(client, source, upload_id, index, CHUNK)
        results = race_last_chunk_with_finishes(client, source, upload_id, 2, CHUNK)
    files = {r.json()["file"]["id"] for r in results if r.status_code == 200 and "file" in r.json()}
    assert len(files) == 1
    assert len(backend.objects()) == 1
    assert backend.leftovers() == []


def test_put_and_one_shot_stream(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a")
    large = random_file(tmp_path / "put.bin", 2 * CHUNK + 3 * MiB)  # several buffered parts
    small = random_file(tmp_path / "small.bin", 1000)
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    with client_for(server) as client:
        put = client.put("/put/put.bin", content=large.read_bytes())
        assert put.status_code == 201, put.text
        assert put.json()["sha256"] == sha256_of(large)
        assert downloaded_sha256(client, put.json()) == sha256_of(large)
        for source in (small, empty):
            response = client.post("/upload", files={"file": (source.name, source.read_bytes())})
            assert response.status_code == 200, response.text
            record = response.json()["file"]
            assert record["sha256"] == sha256_of(source)
            assert downloaded_sha256(client, record) == record["sha256"]
    assert backend.leftovers() == []
