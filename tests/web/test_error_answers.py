"""Refusals as clients read them, byte for byte: the wording names the protocol's own fields
(`dz*` for Dropzone, `Upload-*` for tus), the codes and statuses hold, and tus's headers ride
along on its errors. Written against the renderer before the core stopped speaking HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, random_file
from tests.dz import send_chunk

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {**TUS, "Content-Type": "application/offset+octet-stream"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("errors"), ["--max-size", "4"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def client(running: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=running.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "body"),
    [
        (
            {"dztotalchunkcount": "7"},
            b'{"error":"dztotalchunkcount 7 does not match size and chunk size (expected 2)",'
            b'"code":"bad_request"}',
        ),
        (
            {"dzchunkindex": "5", "dztotalchunkcount": "2"},
            b'{"error":"dzchunkindex is out of range","code":"bad_request"}',
        ),
        (
            {"dzchunkbyteoffset": "17"},
            b'{"error":"dzchunkbyteoffset does not match dzchunkindex * dzchunksize",'
            b'"code":"bad_request"}',
        ),
        ({"dzuuid": "nope"}, b'{"error":"dzuuid must be a UUID","code":"bad_request"}'),
        (
            {"dztotalfilesize": str(5 * MiB), "dztotalchunkcount": "5"},
            b'{"error":"file is larger than the limit of 4 MiB","code":"too_large"}',
        ),
    ],
)
def test_dropzone_refusals_name_the_dz_fields(
    client: httpx.Client, tmp_path: Path, fields: dict[str, str], body: bytes
) -> None:
    source = random_file(tmp_path / "f.bin", 2 * MiB)
    response = send_chunk(client, source, str(uuid.uuid4()), 0, MiB, fields=fields)
    assert response.content == body
    assert response.headers["connection"] == "close"
    assert response.status_code == (413 if b"too_large" in body else 400)


def test_finish_and_state_refusals(client: httpx.Client) -> None:
    finish = client.post("/upload/nope/finish")
    assert (finish.status_code, finish.content) == (
        400,
        b'{"error":"dzuuid must be a UUID","code":"bad_request"}',
    )
    unknown = client.get(f"/upload/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.content) == (
        404,
        b'{"error":"no such upload","code":"not_found"}',
    )
    assert "connection" not in unknown.headers or unknown.headers["connection"] != "close"


def _create(client: httpx.Client, size: int | None) -> str:
    length = {"Upload-Length": str(size)} if size is not None else {"Upload-Defer-Length": "1"}
    response = client.post("/files/", headers={**TUS, **length})
    assert response.status_code == 201, response.text
    return response.headers["location"]


def test_tus_offset_mismatch_names_upload_offset_and_sends_it(client: httpx.Client) -> None:
    url = _create(client, 10)
    response = client.patch(url, content=b"abc", headers={**OCTETS, "Upload-Offset": "5"})
    assert response.status_code == 409
    assert response.content == (
        b'{"error":"Upload-Offset 5 is not the upload\'s offset 0","code":"conflict","offset":0}'
    )
    assert response.headers["upload-offset"] == "0"
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["connection"] == "close"


def test_tus_length_wording_and_version_headers(client: httpx.Client) -> None:
    url = _create(client, 10)
    changed = client.patch(
        url, content=b"", headers={**OCTETS, "Upload-Offset": "0", "Upload-Length": "11"}
    )
    assert (changed.status_code, changed.content) == (
        400,
        b'{"error":"Upload-Length can\'t change once set","code":"bad_request"}',
    )
    deferred = _create(client, None)
    client.patch(deferred, content=b"abcd", headers={**OCTETS, "Upload-Offset": "0"})
    shorter = client.patch(
        deferred, content=b"", headers={**OCTETS, "Upload-Offset": "4", "Upload-Length": "2"}
    )
    assert shorter.content == (
        b'{"error":"Upload-Length is less than the bytes already received","code":"bad_request"}'
    )
    old = client.head(url, headers={"Tus-Resumable": "0.2.2"})
    assert old.status_code == 412
    assert old.headers["tus-version"] == "1.0.0"
    assert old.headers["tus-resumable"] == "1.0.0"
    assert "connection" not in old.headers or old.headers["connection"] != "close"
    missing = client.head(url.rsplit("/", 1)[0] + "/" + uuid.uuid4().hex, headers=TUS)
    assert missing.status_code == 404
    assert missing.headers["tus-resumable"] == "1.0.0"


def test_chunk_and_state_answers_keep_their_fields_and_order(
    client: httpx.Client, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "g.bin", 2 * MiB)
    upload_id = str(uuid.uuid4())
    first = send_chunk(client, source, upload_id, 0, MiB)
    assert first.content == b'{"status":"received","received":1,"total":2}'
    again = send_chunk(client, source, upload_id, 0, MiB)
    assert again.content == b'{"status":"duplicate","total":2}'
    state = client.get(f"/upload/{upload_id}").json()
    assert list(state) == ["id", "name", "size", "chunk_size", "chunk_count", "state", "received"]
    done = send_chunk(client, source, upload_id, 1, MiB).json()
    assert list(done) == ["status", "file"]
    file_fields = [
        "id", "name", "size", "sha256", "url", "page_url", "created", "expires", "downloads",
        "max_downloads", "delete_token",
    ]  # fmt: skip
    assert list(done["file"]) == file_fields
    assert done["file"]["url"] == f"/download/{done['file']['id']}"
    finished = client.get(f"/upload/{upload_id}").json()
    assert finished["received"] == [0, 1]
    assert finished["file"] == done["file"]
    url = _create(client, 3)
    written = client.patch(url, content=b"abc", headers={**OCTETS, "Upload-Offset": "0"})
    assert written.status_code == 204
    tus_state = client.get(url, headers=TUS).json()
    assert list(tus_state) == ["id", "name", "size", "offset", "state", "file"]
    assert list(tus_state["file"]) == file_fields
