"""Dropzone's protocol over real HTTP against `pyfiledrop serve`."""

from __future__ import annotations

import random
import socket
import threading
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, ServerFactory, random_file, sha256_of
from tests.dz import chunk_fields, race_last_chunk_with_finishes, send_chunk, upload

MiB = 1024 * 1024


def client_for(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60)


def stored_bytes_match(server: Server, record: dict[str, object], source: Path) -> None:
    stored = server.storage_dir / str(record["name"])
    assert stored.is_file()
    assert sha256_of(stored) == sha256_of(source) == record["sha256"]
    assert record["size"] == source.stat().st_size


def test_shuffled_chunks_each_sent_twice(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "shuffled.bin", 20 * MiB + 12345)
    count = 21
    order = list(range(count)) * 2
    random.Random(7).shuffle(order)
    with client_for(server) as client:
        record = upload(client, source, 1 * MiB, order=order, in_flight=8)
    stored_bytes_match(server, record, source)
    assert server.stored_files() == [server.storage_dir / "shuffled.bin"]
    assert list(server.chunks_dir.iterdir()) == []
    health = server.health()
    assert health["chunks_counted"] == count
    assert health["chunk_requests"] - health["duplicate_chunks"] >= count


@pytest.mark.parametrize("in_flight", [4, 16])
def test_parallel_chunks_in_flight(server: Server, tmp_path: Path, in_flight: int) -> None:
    source = random_file(tmp_path / "parallel.bin", 48 * MiB)
    with client_for(server) as client:
        record = upload(client, source, 2 * MiB, in_flight=in_flight)
    stored_bytes_match(server, record, source)


@pytest.mark.slow
def test_one_gib_file_sixteen_in_flight(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.bin", 1024 * MiB)
    order = list(range(64))
    random.Random(1).shuffle(order)
    with client_for(server) as client:
        record = upload(client, source, 16 * MiB, order=order, in_flight=16)
    stored_bytes_match(server, record, source)
    source.unlink()


def test_last_chunk_answers_with_the_file_and_finish_is_idempotent(
    server: Server, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "two.bin", 3 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        first = send_chunk(client, source, upload_id, 0, 2 * MiB)
        assert first.json() == {"status": "received", "received": 1, "total": 2}
        early = client.post(f"/upload/{upload_id}/finish")
        assert early.status_code == 409
        assert early.json()["missing"] == [1]
        last = send_chunk(client, source, upload_id, 1, 2 * MiB).json()
        assert last["status"] == "done"
        finish = [client.post(f"/upload/{upload_id}/finish").json() for _ in range(3)]
    assert {answer["file"]["id"] for answer in finish} == {last["file"]["id"]}
    assert set(last["file"]) >= {"id", "name", "size", "sha256", "url"}
    stored_bytes_match(server, last["file"], source)


def test_finish_racing_last_chunk_publishes_once(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "race.bin", 8 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        for index in range(7):
            send_chunk(client, source, upload_id, index, MiB)
        results = race_last_chunk_with_finishes(client, source, upload_id, 7, MiB)
    ids = {r.json()["file"]["id"] for r in results if r.status_code == 200 and "file" in r.json()}
    assert len(ids) == 1
    assert server.stored_files() == [server.storage_dir / "race.bin"]


def test_resume_after_sigkill(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "crash.bin", 16 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        for index in (0, 3, 5, 9, 15):
            assert send_chunk(client, source, upload_id, index, MiB).status_code == 200
        cookies = dict(client.cookies)
    server.kill()
    assert server.stored_files() == []
    server.start()
    with httpx.Client(base_url=server.url, timeout=60, cookies=cookies) as client:
        state = client.get(f"/upload/{upload_id}").json()
        assert state["state"] == "receiving"
        assert state["received"] == [0, 3, 5, 9, 15]
        missing = [i for i in range(16) if i not in state["received"]]
        record = upload(client, source, MiB, order=missing, upload_id=upload_id)
    stored_bytes_match(server, record, source)


def test_cut_connection_mid_chunk_counts_nothing(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "cut.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    fields = chunk_fields(upload_id, 0, MiB, 2 * MiB)
    boundary = "cutboundary"
    head = "".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    )
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body_start = head.encode() + source.read_bytes()[: MiB // 2]
    full_length = len(head.encode()) + MiB + len(f"\r\n--{boundary}--\r\n")
    with socket.create_connection(("127.0.0.1", server.port)) as raw:
        raw.sendall(
            (
                f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {full_length}\r\n\r\n"
            ).encode()
            + body_start
        )
    with client_for(server) as client:
        # Whoever names the dzuuid may ask (it is the capability): nothing of the cut chunk counts.
        state = client.get(f"/upload/{upload_id}")
        assert state.status_code == 200 and state.json()["received"] == []
    assert server.health()["chunks_counted"] == 0
    assert server.stored_files() == []


def test_cut_chunk_is_resent_and_completes(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "resend.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        send_chunk(client, source, upload_id, 1, MiB)
        cookie = client.cookies["pfd_owner"]
        fields = chunk_fields(upload_id, 0, MiB, 2 * MiB)
        boundary = "b0undary"
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ) + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="resend.bin"\r\n\r\n'
        )
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(
                (
                    f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: pfd_owner={cookie}\r\n"
                    f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                    f"Content-Length: {len(head) + MiB + 40}\r\n\r\n"
                ).encode()
                + head.encode()
                + b"\xff" * (MiB // 3)
            )
        assert client.get(f"/upload/{upload_id}").json()["received"] == [1]
        last = send_chunk(client, source, upload_id, 0, MiB).json()
    assert last["status"] == "done"
    stored_bytes_match(server, last["file"], source)


BAD_FIELDS = [
    ({"dzuuid": "../../etc/passwd"}, 400),
    ({"dzuuid": "not-a-uuid"}, 400),
    ({"dzchunkindex": "-1"}, 400),
    ({"dzchunkindex": "1e3"}, 400),
    ({"dzchunkindex": "5"}, 400),
    ({"dztotalchunkcount": "7"}, 400),
    ({"dzchunkbyteoffset": "17"}, 400),
    ({"dzchunksize": "0"}, 400),
    ({"dztotalfilesize": "abc"}, 400),
    ({"dztotalfilesize": "99999999999999999999999"}, 400),
]


@pytest.mark.parametrize(("override", "status"), BAD_FIELDS)
def test_invalid_fields_are_refused(
    server: Server, tmp_path: Path, override: dict[str, str], status: int
) -> None:
    source = random_file(tmp_path / "bad.bin", 2 * MiB)
    with client_for(server) as client:
        response = send_chunk(client, source, str(uuid.uuid4()), 0, MiB, fields=override)
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert server.stored_files() == []
    assert list(server.chunks_dir.iterdir()) == []


def test_missing_field_and_no_file(server: Server) -> None:
    with client_for(server) as client:
        fields = chunk_fields(str(uuid.uuid4()), 0, MiB, MiB)
        del fields["dzchunkbyteoffset"]
        response = client.post("/upload", data=fields, files={"file": ("a", b"x" * MiB)})
        assert response.status_code == 400
        assert "dzchunkbyteoffset" in response.json()["error"]
        assert client.post("/upload", data={"a": "b"}, files={}).status_code in (400, 415)
        assert client.post("/upload", content=b"plain").status_code == 415


def test_dzuuid_traversal_writes_nothing_outside(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "evil.bin", MiB)
    with client_for(server) as client:
        for evil in ("../evil", "../../../../tmp/evil", "/tmp/evil", "..\\evil", "a/../../b"):
            response = send_chunk(client, source, evil, 0, MiB)
            assert response.status_code == 400
    assert not (server.root / "evil").exists()
    assert not Path("/tmp/evil.part").exists()
    assert list(server.chunks_dir.iterdir()) == []


def test_conflicting_chunks_of_one_upload(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "conflict.bin", 4 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        assert send_chunk(client, source, upload_id, 0, MiB).status_code == 200
        response = send_chunk(client, source, upload_id, 0, 2 * MiB)
    assert response.status_code == 409


def test_max_size_is_enforced_before_writing(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory("--max-size", "1")
    source = random_file(tmp_path / "large.bin", 2 * MiB)
    with client_for(server) as client:
        chunked = send_chunk(client, source, str(uuid.uuid4()), 0, MiB)
        one_shot = client.post("/upload", files={"file": ("large.bin", source.read_bytes())})
        put = client.put("/put/large.bin", content=source.read_bytes())
    assert (chunked.status_code, one_shot.status_code, put.status_code) == (413, 413, 413)
    assert "1 MiB" in chunked.json()["error"]
    assert server.stored_files() == []
    assert list(server.chunks_dir.iterdir()) == []


def test_body_longer_than_claimed_is_refused(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "long.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        fields = chunk_fields(upload_id, 1, MiB, 2 * MiB)
        response = client.post(
            "/upload", data=fields, files={"file": ("long.bin", source.read_bytes())}
        )
        assert response.status_code == 413
        short = client.post(
            "/upload",
            data=chunk_fields(upload_id, 1, MiB, 2 * MiB),
            files={"file": ("long.bin", b"x" * 1000)},
        )
        assert short.status_code == 400
        assert client.get(f"/upload/{upload_id}").json()["received"] == []
    assert server.stored_files() == []


def test_one_shot_upload_without_dzuuid(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "once.bin", 3 * MiB + 1)
    with client_for(server) as client:
        response = client.post("/upload", files={"file": ("once.bin", source.read_bytes())})
    assert response.status_code == 200
    record = response.json()["file"]
    stored_bytes_match(server, record, source)
    assert list(server.chunks_dir.iterdir()) == []


def test_put_streams_a_file(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "put.bin", 5 * MiB)
    with client_for(server) as client:
        response = client.put("/put/put%20me.bin", content=source.read_bytes())
        assert response.status_code == 201
        record = response.json()
        assert record["name"] == "put me.bin"
        again = client.put("/put/put%20me.bin", content=source.read_bytes()).json()
    assert again["name"] == "put me.bin"  # as sent; the name on disk is the server's business
    assert "deduplicated" not in again  # the operator's to know (`pyfiledrop stats`)
    stored_bytes_match(server, record, source)
    first, second = server.storage_dir / "put me.bin", server.storage_dir / "put me (1).bin"
    assert first.stat().st_ino == second.stat().st_ino


def test_same_names_are_made_unique(server: Server, tmp_path: Path) -> None:
    names = []
    with client_for(server) as client:
        for size in (1000, 2000, 3000):
            source = random_file(tmp_path / f"{size}.tar.gz", size)
            response = client.post("/upload", files={"file": ("same.tar.gz", source.read_bytes())})
            names.append(response.json()["file"]["name"])
    assert names == ["same.tar.gz"] * 3  # each uploader sees the name it sent
    on_disk = sorted(path.name for path in server.storage_dir.iterdir())
    assert on_disk == ["same (1).tar.gz", "same (2).tar.gz", "same.tar.gz"]


def test_publish_waits_for_a_retry_still_writing(server: Server, tmp_path: Path) -> None:
    """A retry of a chunk that is still streaming when the file completes must not write into the
    published file afterwards (it may share its bytes with others through deduplication). The
    copy that came first is the chunk's one writer: the other copy waits for it to count and
    answers "duplicate"; the file is published by the first copy's request."""
    source = random_file(tmp_path / "late.bin", 2 * MiB)
    data = source.read_bytes()
    upload_id = str(uuid.uuid4())
    with client_for(server) as client:
        client.get("/healthz")
        cookie = client.cookies["pfd_owner"]
        boundary = "lateboundary"
        head = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in chunk_fields(upload_id, 0, MiB, 2 * MiB).items()
        ) + (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            'filename="late.bin"\r\n\r\n'
        )
        tail = f"\r\n--{boundary}--\r\n"
        raw = socket.create_connection(("127.0.0.1", server.port))
        raw.sendall(
            (
                f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: pfd_owner={cookie}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(head) + MiB + len(tail)}\r\n\r\n"
            ).encode()
            + head.encode()
            + data[: MiB // 2]
        )
        assert send_chunk(client, source, upload_id, 1, MiB).status_code == 200
        finished: list[httpx.Response] = []
        original = threading.Thread(
            target=lambda: finished.append(send_chunk(client, source, upload_id, 0, MiB))
        )
        original.start()
        original.join(1.5)
        assert original.is_alive(), "published while a retry was still writing"
        raw.sendall(data[MiB // 2 : MiB] + tail.encode())
        original.join(30)
        raw.close()
        assert finished[0].status_code == 200
        assert finished[0].json()["status"] == "duplicate"
        record = client.post(f"/upload/{upload_id}/finish").json()["file"]
    stored_bytes_match(server, record, source)
