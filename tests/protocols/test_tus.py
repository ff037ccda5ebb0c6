"""tus 1.0.0 at /files/ over real HTTP: every status the spec names, by hand-written requests."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server, ServerFactory, sha256_of

MiB = 1024 * 1024
MAX_SIZE_MIB = 32
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def tus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("tus"), ["--max-size", str(MAX_SIZE_MIB)])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(tus_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tus_server.url, timeout=30) as client:
        client.get("/healthz")  # the owner cookie, so the files show in this client's list
        yield client


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def create(client: httpx.Client, size: int | None, **headers: str) -> str:
    length = {"Upload-Length": str(size)} if size is not None else {"Upload-Defer-Length": "1"}
    response = client.post("/files/", headers={**TUS, **length, **headers})
    assert response.status_code == 201, response.text
    return response.headers["location"]


def patch(
    client: httpx.Client, url: str, offset: int, data: bytes, **headers: str
) -> httpx.Response:
    return client.patch(
        url, content=data, headers={**OCTETS, "Upload-Offset": str(offset), **headers}
    )


def offset_of(client: httpx.Client, url: str) -> int:
    response = client.head(url, headers=TUS)
    assert response.status_code == 200
    return int(response.headers["upload-offset"])


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def test_options_announces_version_extensions_and_limits(client: httpx.Client) -> None:
    response = client.options("/files/")
    assert response.status_code == 204
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "creation-defer-length", "expiration", "checksum",
        "termination", "concatenation",
    }  # fmt: skip
    assert response.headers["tus-max-size"] == str(MAX_SIZE_MIB * MiB)
    assert set(response.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256", "md5"}


def test_create_patch_head_and_the_file_record(client: httpx.Client, tus_server: Server) -> None:
    data = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4
    url = create(
        client,
        len(data),
        **{
            "Upload-Metadata": metadata(
                filename="../r\u00e9sum\u00e9.pdf", filetype="application/pdf"
            )
        },
    )
    assert url.startswith(f"{tus_server.url}/files/")
    head = client.head(url, headers=TUS)
    assert head.headers["upload-offset"] == "0"
    assert head.headers["upload-length"] == str(len(data))
    assert head.headers["cache-control"] == "no-store"
    assert "upload-expires" in head.headers
    assert head.headers["upload-metadata"].startswith("filename ")
    first = patch(client, url, 0, data[:300_000])
    assert first.status_code == 204
    assert first.headers["upload-offset"] == "300000"
    assert "upload-expires" in first.headers
    assert "x-pyfiledrop-file" not in first.headers
    last = patch(client, url, 300_000, data[300_000:])
    assert last.status_code == 204
    assert last.headers["upload-offset"] == str(len(data))
    assert "upload-expires" not in last.headers
    file_id = last.headers["x-pyfiledrop-file"]
    assert last.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()
    record = client.get(f"/api/files/{file_id}").json()
    assert record["name"] == "résumé.pdf"
    assert record["type"] == "application/pdf"
    assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert record["size"] == len(data)
    assert file_id in [entry["id"] for entry in client.get("/api/files").json()["files"]]
    assert (tus_server.storage_dir / "résumé.pdf").read_bytes() == data
    state = httpx.get(url).json()  # the URL is the capability: no cookie needed
    assert state["file"]["id"] == file_id and state["offset"] == len(data)
    done = client.head(url, headers=TUS)
    assert done.headers["upload-offset"] == done.headers["upload-length"] == str(len(data))
    assert done.headers["x-pyfiledrop-file"] == file_id


def test_412_for_a_missing_or_other_tus_version(client: httpx.Client) -> None:
    url = create(client, 10)
    for headers in ({}, {"Tus-Resumable": "0.2.2"}):
        for response in (
            client.post("/files/", headers={**headers, "Upload-Length": "5"}),
            client.head(url, headers=headers),
            client.patch(
                url,
                content=b"x",
                headers={
                    **headers,
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
            ),
            client.delete(url, headers=headers),
        ):
            assert response.status_code == 412
            assert response.headers["tus-version"] == "1.0.0"
    assert offset_of(client, url) == 0


def test_415_for_a_patch_that_is_not_offset_octets(client: httpx.Client) -> None:
    url = create(client, 10)
    response = client.patch(
        url,
        content=b"0123456789",
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 415
    assert offset_of(client, url) == 0


def test_409_for_a_wrong_offset_and_nothing_changes(client: httpx.Client) -> None:
    url = create(client, 10)
    assert patch(client, url, 0, b"01234").status_code == 204
    for wrong in (0, 3, 7):
        response = patch(client, url, wrong, b"abc")
        assert response.status_code == 409
        assert response.headers["upload-offset"] == "5"
    assert offset_of(client, url) == 5
    assert patch(client, url, 5, b"56789").status_code == 204


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5"])
def test_checksum_match_204_mismatch_460_discards_the_bytes(
    client: httpx.Client, algorithm: str
) -> None:
    data = b"hello world, checked" * 1000
    url = create(client, len(data))
    good = patch(
        client, url, 0, data[:5000], **{"Upload-Checksum": checksum(algorithm, data[:5000])}
    )
    assert good.status_code == 204
    bad = patch(
        client, url, 5000, b"X" * 5000, **{"Upload-Checksum": checksum(algorithm, data[5000:10000])}
    )
    assert bad.status_code == 460
    assert offset_of(client, url) == 5000
    rest = data[5000:]
    last = patch(client, url, 5000, rest, **{"Upload-Checksum": checksum(algorithm, rest)})
    assert last.status_code == 204
    record = client.get(f"/api/files/{last.headers['x-pyfiledrop-file']}").json()
    assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_400_for_an_unsupported_checksum_algorithm(client: httpx.Client) -> None:
    url = create(client, 4)
    response = patch(client, url, 0, b"abcd", **{"Upload-Checksum": "crc32 AAAAAA=="})
    assert response.status_code == 400
    assert offset_of(client, url) == 0


def test_413_over_the_size_limit(client: httpx.Client) -> None:
    over = MAX_SIZE_MIB * MiB + 1
    response = client.post("/files/", headers={**TUS, "Upload-Length": str(over)})
    assert response.status_code == 413
    url = create(client, 10)
    assert patch(client, url, 0, b"0123456789ab").status_code == 413
    assert offset_of(client, url) == 0
    deferred = create(client, None)
    response = patch(client, deferred, 0, b"", **{"Upload-Length": str(over)})
    assert response.status_code == 413


def test_404_unknown_and_204_then_404_after_termination(
    client: httpx.Client, tus_server: Server
) -> None:
    assert (
        client.head("/files/8a1b3c1e-0000-4000-8000-000000000000", headers=TUS).status_code == 404
    )
    assert client.head("/files/not-a-uuid", headers=TUS).status_code == 404
    assert patch(client, "/files/8a1b3c1e-0000-4000-8000-000000000000", 0, b"x").status_code == 404
    url = create(client, 100)
    assert patch(client, url, 0, b"x" * 40).status_code == 204
    upload_id = urlsplit(url).path.rsplit("/", 1)[-1]
    assert (tus_server.chunks_dir / f"{upload_id}.part").exists()
    deleted = client.delete(url, headers=TUS)
    assert deleted.status_code == 204
    assert deleted.headers["tus-resumable"] == "1.0.0"
    assert client.head(url, headers=TUS).status_code == 404
    assert patch(client, url, 40, b"x").status_code == 404
    assert not (tus_server.chunks_dir / f"{upload_id}.part").exists()


def test_410_once_an_unfinished_upload_expired(server_factory: ServerFactory) -> None:
    server = server_factory("--abandon-after", "1s")
    with httpx.Client(base_url=server.url) as client:
        url = create(client, 100)
        response = patch(client, url, 0, b"x" * 10)
        expires = response.headers["upload-expires"]
        assert expires.endswith(" GMT")
        time.sleep(1.6)
        assert client.head(url, headers=TUS).status_code == 410
        assert client.head(url, headers=TUS).status_code == 404  # removed with the 410
    assert list(server.chunks_dir.iterdir()) == []


def test_creation_with_upload(client: httpx.Client) -> None:
    data = b"all in the POST" * 100
    response = client.post(
        "/files/",
        content=data[:1000],
        headers={**OCTETS, "Upload-Length": str(len(data))},
    )
    assert response.status_code == 201
    assert response.headers["upload-offset"] == "1000"
    url = response.headers["location"]
    assert patch(client, url, 1000, data[1000:]).status_code == 204
    whole = client.post(
        "/files/", content=data, headers={**OCTETS, "Upload-Length": str(len(data))}
    )
    assert whole.status_code == 201
    assert whole.headers["upload-offset"] == str(len(data))
    assert "x-pyfiledrop-file" in whole.headers
    wrong = client.post(
        "/files/",
        content=data,
        headers={**TUS, "Upload-Length": str(len(data)), "Content-Type": "text/plain"},
    )
    assert wrong.status_code == 415
    assert "location" not in wrong.headers


def test_creation_defer_length(client: httpx.Client) -> None:
    url = create(client, None)
    head = client.head(url, headers=TUS)
    assert head.headers["upload-defer-length"] == "1"
    assert "upload-length" not in head.headers
    assert patch(client, url, 0, b"first ").status_code == 204
    last = patch(client, url, 6, b"and last", **{"Upload-Length": "14"})
    assert last.status_code == 204
    record = client.get(f"/api/files/{last.headers['x-pyfiledrop-file']}").json()
    assert record["sha256"] == hashlib.sha256(b"first and last").hexdigest()
    assert client.post("/files/", headers={**TUS, "Upload-Defer-Length": "2"}).status_code == 400


def test_empty_upload_is_complete_at_creation(client: httpx.Client) -> None:
    response = client.post(
        "/files/",
        headers={**TUS, "Upload-Length": "0", "Upload-Metadata": metadata(filename="empty.txt")},
    )
    assert response.status_code == 201
    record = client.get(f"/api/files/{response.headers['x-pyfiledrop-file']}").json()
    assert record["size"] == 0 and record["sha256"] == hashlib.sha256(b"").hexdigest()


def test_concatenation_joins_partials_and_final_refuses_patch(
    client: httpx.Client, tus_server: Server
) -> None:
    parts = [b"hello", b" ", b"world" * 2000]
    urls = []
    for part in parts:
        url = create(client, len(part), **{"Upload-Concat": "partial"})
        assert client.head(url, headers=TUS).headers["upload-concat"] == "partial"
        assert patch(client, url, 0, part).status_code == 204
        urls.append(url)
    incomplete = create(client, 10, **{"Upload-Concat": "partial"})
    refused = client.post(
        "/files/", headers={**TUS, "Upload-Concat": f"final;{urls[0]} {incomplete}"}
    )
    assert refused.status_code == 400
    relative = [urlsplit(url).path for url in urls]
    final = client.post(
        "/files/",
        headers={**TUS, "Upload-Concat": "final;" + " ".join([urls[0], *relative[1:]]),
                 "Upload-Metadata": metadata(filename="joined.txt")},
    )  # fmt: skip
    assert final.status_code == 201
    whole = b"".join(parts)
    record = client.get(f"/api/files/{final.headers['x-pyfiledrop-file']}").json()
    assert record["sha256"] == hashlib.sha256(whole).hexdigest()
    assert (tus_server.storage_dir / "joined.txt").read_bytes() == whole
    final_url = final.headers["location"]
    head = client.head(final_url, headers=TUS)
    assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(whole))
    assert head.headers["upload-concat"].startswith("final;")
    assert patch(client, final_url, len(whole), b"x").status_code == 403
    for url in urls:  # the parts are removed once joined
        assert client.head(url, headers=TUS).status_code == 404


def test_method_override_and_dedup(client: httpx.Client) -> None:
    data = b"same bytes twice" * 99
    ids = []
    for _ in range(2):
        url = create(client, len(data))
        response = client.post(
            url,
            content=data,
            headers={**OCTETS, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
        )
        assert response.status_code == 204
        ids.append(response.headers["x-pyfiledrop-file"])
    first, second = (client.get(f"/api/files/{file_id}").json() for file_id in ids)
    assert first["sha256"] == second["sha256"] and "deduplicated" not in second


def raw_patch_start(
    server: Server, url: str, offset: int, length: int, first: bytes
) -> socket.socket:
    """A PATCH whose headers promise `length` bytes, of which only `first` is sent (so far)."""
    path = urlsplit(url).path
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    connection.sendall(head.encode() + first)
    return connection


def wait_for_offset(client: httpx.Client, url: str, expected: int) -> None:
    deadline = time.monotonic() + 10
    while offset_of(client, url) != expected:
        assert time.monotonic() < deadline, f"offset stays {offset_of(client, url)}"
        time.sleep(0.05)


def test_patch_cut_mid_body_keeps_what_arrived(
    client: httpx.Client, tus_server: Server, tmp_path: Path
) -> None:
    data = bytes(range(251)) * 8000  # ~2 MB, not a multiple of anything
    url = create(client, len(data))
    connection = raw_patch_start(tus_server, url, 0, len(data), data[:777_777])
    time.sleep(0.3)
    connection.close()
    wait_for_offset(client, url, 777_777)
    last = patch(client, url, 777_777, data[777_777:])
    assert last.status_code == 204
    assert last.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()


def test_a_patch_under_the_rate_floor_keeps_what_arrived_before_the_408(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("--min-rate", "1000000", "--min-rate-window", "1")
    data = bytes(range(251)) * 8000
    with httpx.Client(base_url=server.url, timeout=30) as client:
        url = create(client, len(data))
        connection = raw_patch_start(server, url, 0, len(data), data[:777_777])
        wait_for_offset(client, url, 777_777)  # a burst, then a trickle under the floor
        sent, answer = 777_777, b""
        while not answer and sent < len(data):
            connection.sendall(data[sent : sent + 100])
            sent += 100
            with contextlib.suppress(TimeoutError, BlockingIOError):
                connection.settimeout(0.1)  # pacing the trickle while watching for the answer
                answer = connection.recv(4096)
        connection.close()
        assert answer.startswith(b"HTTP/1.1 408"), answer
        kept = offset_of(client, url)
        assert 777_777 < kept <= sent  # the piece that met the floor counts too
        last = patch(client, url, kept, data[kept:])
        assert last.status_code == 204
        assert last.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()


def test_a_stalled_patch_is_taken_over_at_once(client: httpx.Client, tus_server: Server) -> None:
    """A client that stalls mid-body (or vanished without a FIN) holds the lock; its retry on a
    new connection asks the holder to let go and writes within seconds, not after the idle cut."""
    data = bytes(range(256)) * 2000
    url = create(client, len(data))
    first = raw_patch_start(tus_server, url, 0, len(data), data[:100_000])
    wait_for_offset(client, url, 100_000)  # saved by the stalled request, which holds the lock
    started = time.monotonic()
    rival = patch(client, url, 100_000, data[100_000:])
    took = time.monotonic() - started
    assert rival.status_code == 204, rival.text
    assert took < 4, f"the takeover took {took:.1f} s"
    assert rival.headers["x-pyfiledrop-sha256"] == hashlib.sha256(data).hexdigest()
    reply = first.recv(4096)
    first.close()
    assert reply.startswith(b"HTTP/1.1 423")  # the holder was told why it stopped
    assert patch(client, url, 0, data).status_code == 409


def test_a_live_writer_asked_to_let_go_keeps_its_bytes_and_the_newcomer_gets_the_offset(
    client: httpx.Client, tus_server: Server
) -> None:
    data = bytes(range(256)) * 2000
    url = create(client, len(data))
    first = raw_patch_start(tus_server, url, 0, len(data), data[:100_000])
    wait_for_offset(client, url, 100_000)
    first.sendall(data[100_000:150_000])  # not saved yet: the holder saves it when it lets go
    rival = patch(client, url, 0, data)
    assert rival.status_code == 409
    kept = int(rival.headers["upload-offset"])
    assert 100_000 <= kept <= 150_000
    first.close()
    assert patch(client, url, kept, data[kept:]).status_code == 204
    assert offset_of(client, url) == len(data)


def test_a_writer_asked_to_let_go_keeps_the_bytes_it_had_not_handed_on_yet(
    client: httpx.Client, tus_server: Server
) -> None:
    """Bytes still in the body's partly filled buffer (well under a buffer, sent just before
    the rival) are written and counted before the holder lets go."""
    data = bytes(range(256)) * 2000
    url = create(client, len(data))
    first = raw_patch_start(tus_server, url, 0, len(data), data[:100_000])
    wait_for_offset(client, url, 100_000)
    first.sendall(data[100_000:150_000])
    rival = patch(client, url, 0, data)
    assert rival.status_code == 409
    assert rival.headers["upload-offset"] == "150000"
    first.close()


def test_delete_stops_a_stalled_patch_and_removes_the_upload(
    client: httpx.Client, tus_server: Server
) -> None:
    url = create(client, 300_000)
    first = raw_patch_start(tus_server, url, 0, 300_000, b"d" * 100_000)
    wait_for_offset(client, url, 100_000)
    deleted = client.delete(url, headers=TUS)
    assert deleted.status_code == 204, deleted.text
    assert first.recv(4096).startswith(b"HTTP/1.1 423")
    first.close()
    assert client.head(url, headers=TUS).status_code == 404
    upload_id = urlsplit(url).path.rsplit("/", 1)[-1]
    assert not (tus_server.chunks_dir / f"{upload_id}.part").exists()


def test_a_refused_patch_leaves_no_bytes_in_the_file(
    client: httpx.Client, tus_server: Server
) -> None:
    url = create(client, None, **{"Upload-Metadata": metadata(filename="after-460.txt")})
    body = b"x" * (4 * MiB)
    bad = patch(client, url, 0, body, **{"Upload-Checksum": checksum("sha256", b"other")})
    assert bad.status_code == 460
    assert offset_of(client, url) == 0
    done = patch(client, url, 0, b"hello", **{"Upload-Length": "5"})
    assert done.status_code == 204
    assert done.headers["x-pyfiledrop-sha256"] == hashlib.sha256(b"hello").hexdigest()
    stored = tus_server.storage_dir / "after-460.txt"
    assert stored.read_bytes() == b"hello"
    assert sha256_of(stored) == hashlib.sha256(b"hello").hexdigest()


def test_an_empty_metadata_header_is_no_metadata(client: httpx.Client) -> None:
    url = create(client, 3, **{"Upload-Metadata": ""})
    head = client.head(url, headers=TUS)
    assert "upload-metadata" not in head.headers
    assert patch(client, url, 0, b"abc").status_code == 204


def quota_refusal(client: httpx.Client, url: str, offset: int, size: int) -> int:
    """PATCH `size` bytes; the server may answer before it has read them all (and close)."""
    try:
        return patch(client, url, offset, b"q" * size).status_code
    except httpx.TransportError:
        return 0  # the answer was lost with the connection; the offset tells what counted


def test_a_deferred_length_is_admitted_as_it_grows_and_when_known(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("--owner-quota", "10MiB", "--min-free", "0")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        url = create(client, None, **{"Upload-Metadata": metadata(filename="deferred.bin")})
        assert quota_refusal(client, url, 0, 48 * MiB) in (507, 0)
        kept = offset_of(client, url)
        assert kept <= 10 * MiB
        assert patch(client, url, kept, b"", **{"Upload-Length": str(48 * MiB)}).status_code == 507
        head = client.head(url, headers=TUS)
        assert head.headers["upload-defer-length"] == "1"  # the length was not taken either
        assert client.get("/api/files").json()["files"] == []
    assert server.stored_files() == []
    # Within the quota the same upload goes through.
    with httpx.Client(base_url=server.url, timeout=30) as client:
        url = create(client, None)
        assert patch(client, url, 0, b"s" * MiB, **{"Upload-Length": str(MiB)}).status_code == 204


def test_a_partial_repeated_in_a_concatenation_is_refused(server_factory: ServerFactory) -> None:
    server = server_factory("--owner-quota", "20MiB", "--min-free", "0")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        part = create(client, 8 * MiB, **{"Upload-Concat": "partial"})
        assert patch(client, part, 0, b"p" * (8 * MiB)).status_code == 204
        final = client.post(
            "/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join([part] * 5)}
        )
        assert final.status_code == 400
        assert "only once" in final.json()["error"]
        assert client.get("/api/files").json()["files"] == []
    assert server.stored_files() == []
    assert [p.name for p in server.chunks_dir.iterdir()] == [f"{part.rsplit('/', 1)[1]}.part"]


def test_a_concatenation_of_other_owners_partials_is_admitted(
    server_factory: ServerFactory,
) -> None:
    """Partials made without the owner cookie (each its own owner) join one owner's file: its
    quota must take them before anything is copied."""
    server = server_factory("--owner-quota", "10MiB", "--min-free", "0")
    parts = []
    for piece in (b"a", b"b"):
        with httpx.Client(base_url=server.url, timeout=30) as stranger:
            part = create(stranger, 6 * MiB, **{"Upload-Concat": "partial"})
            assert patch(stranger, part, 0, piece * (6 * MiB)).status_code == 204
            parts.append(part)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        final = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
        assert final.status_code == 507
        assert client.get("/api/files").json()["files"] == []
    assert server.stored_files() == []


def test_a_concatenation_at_the_cap_on_uploads_in_progress_is_admitted(
    server_factory: ServerFactory,
) -> None:
    """The final upload replaces its parts, which the cap counted: it is no new upload to cap."""
    server = server_factory("--uploads-per-owner", "2")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        parts = [create(client, 3, **{"Upload-Concat": "partial"}) for _ in range(2)]
        for part in parts:
            assert patch(client, part, 0, b"abc").status_code == 204
        final = client.post("/files/", headers={**TUS, "Upload-Concat": "final;" + " ".join(parts)})
        assert final.status_code == 201, final.text
        assert final.headers["x-pyfiledrop-sha256"] == hashlib.sha256(b"abcabc").hexdigest()


def test_cors_exposes_tus_headers(server_factory: ServerFactory) -> None:
    origin = "http://app.example"
    server = server_factory("--cors-origin", origin)
    with httpx.Client(base_url=server.url) as client:
        preflight = client.options(
            "/files/",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "tus-resumable,upload-length,upload-metadata",
            },
        )
        assert preflight.status_code == 204
        allowed = preflight.headers["access-control-allow-headers"]
        assert "upload-length" in allowed
        created = client.post("/files/", headers={**TUS, "Upload-Length": "3", "Origin": origin})
        assert created.status_code == 201
        exposed = {
            h.strip().lower() for h in created.headers["access-control-expose-headers"].split(",")
        }
        assert {"location", "upload-offset", "tus-resumable", "x-pyfiledrop-file"} <= exposed


def test_stored_file_matches_after_many_small_patches(
    client: httpx.Client, tus_server: Server, tmp_path: Path
) -> None:
    data = bytes(reversed(range(256))) * 40000  # ~10 MB
    url = create(client, len(data), **{"Upload-Metadata": metadata(filename="pieces.bin")})
    offset = 0
    for size in (1, 65535, 65537, 1_000_000, 3 * MiB + 3, len(data)):
        piece = data[offset : offset + size]
        if not piece:
            break
        response = patch(client, url, offset, piece)
        assert response.status_code == 204
        offset += len(piece)
    assert offset == len(data)
    assert sha256_of(tus_server.storage_dir / "pieces.bin") == hashlib.sha256(data).hexdigest()


def test_a_password_protected_server_takes_tus_with_a_bearer_token(
    server_factory: ServerFactory,
) -> None:
    server = server_factory("--password", "correct horse battery")
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/files/", headers={**TUS, "Upload-Length": "3"})
        assert refused.status_code == 401
        bearer = {"Authorization": "Bearer correct horse battery"}
        url = create(client, 3, **bearer)
        response = patch(client, url, 0, b"abc", **bearer)
        assert response.status_code == 204
        assert "x-pyfiledrop-file" in response.headers
        assert client.head(url, headers=TUS).status_code == 401


def test_the_finished_answer_carries_a_delete_token(client: httpx.Client) -> None:
    url = create(client, 4)
    done = patch(client, url, 0, b"gone")
    file_id, token = done.headers["x-pyfiledrop-file"], done.headers["x-pyfiledrop-delete-token"]
    assert httpx.get(url).json()["file"]["delete_token"] == token
    with httpx.Client(base_url=client.base_url) as stranger:  # no cookie: the token decides
        response = stranger.delete(f"/api/files/{file_id}", headers={"X-Delete-Token": token})
    assert response.status_code == 200
    assert client.get(f"/api/files/{file_id}").status_code in (404, 410)
