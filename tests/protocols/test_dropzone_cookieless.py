"""Scripts written from the article's protocol, with `requests` and no cookie jar: the dzuuid
is the capability for its upload, so chunks, the state and the finish need no owner cookie."""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from tests.conftest import Server, random_file, sha256_of

CHUNK = 256 * 1024
TIMEOUT = 30


def post_chunk(
    base: str, path: Path, upload_id: str, index: int, cookies: dict[str, str] | None = None
) -> requests.Response:
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(index * CHUNK)
        body = handle.read(CHUNK)
    fields = {
        "dzuuid": upload_id,
        "dzchunkindex": str(index),
        "dztotalfilesize": str(size),
        "dzchunksize": str(CHUNK),
        "dztotalchunkcount": str(math.ceil(size / CHUNK)),
        "dzchunkbyteoffset": str(index * CHUNK),
    }
    return requests.post(
        f"{base}/upload",
        data=fields,
        files={"file": (path.name, body, "application/octet-stream")},
        cookies=cookies,
        timeout=TIMEOUT,
    )


def test_four_parallel_chunks_from_the_first_without_a_cookie_jar(
    server: Server, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "script.bin", 4 * CHUNK - 1000)
    upload_id = str(uuid.uuid4())
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: post_chunk(server.url, source, upload_id, i), range(4)))
    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]

    state = requests.get(f"{server.url}/upload/{upload_id}", timeout=TIMEOUT)
    assert state.status_code == 200
    assert state.json()["received"] == [0, 1, 2, 3]

    finish = requests.post(f"{server.url}/upload/{upload_id}/finish", timeout=TIMEOUT)
    assert finish.status_code == 200, finish.text
    record = finish.json()["file"]
    assert record["sha256"] == sha256_of(source)
    stored = server.storage_dir / record["name"]
    assert sha256_of(stored) == sha256_of(source)

    # Nobody's list shows it; the uploader keeps the delete token from the finish answer.
    listing = requests.get(f"{server.url}/api/files", timeout=TIMEOUT)
    assert listing.json()["files"] == []
    deleted = requests.delete(
        f"{server.url}/api/files/{record['id']}",
        headers={"X-Delete-Token": record["delete_token"]},
        timeout=TIMEOUT,
    )
    assert deleted.status_code == 200, deleted.text
    assert not stored.exists()


def test_the_first_cookie_seen_becomes_the_owner(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "later.bin", 2 * CHUNK)
    upload_id = str(uuid.uuid4())
    first = post_chunk(server.url, source, upload_id, 0)
    assert first.status_code == 200
    offered = first.cookies["pfd_owner"]  # a jar would keep it and send it back
    second = post_chunk(server.url, source, upload_id, 1, cookies={"pfd_owner": offered})
    assert second.json()["status"] == "done"

    mine = requests.get(f"{server.url}/api/files", cookies={"pfd_owner": offered}, timeout=30)
    assert [f["sha256"] for f in mine.json()["files"]] == [sha256_of(source)]
    # A later cookie changes nothing: the first one seen keeps the file.
    other = requests.get(f"{server.url}/healthz", timeout=TIMEOUT).cookies["pfd_owner"]
    again = requests.post(
        f"{server.url}/upload/{upload_id}/finish", cookies={"pfd_owner": other}, timeout=30
    )
    assert again.status_code == 200
    theirs = requests.get(f"{server.url}/api/files", cookies={"pfd_owner": other}, timeout=30)
    assert theirs.json()["files"] == []
