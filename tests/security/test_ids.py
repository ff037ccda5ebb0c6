"""Id enumeration: public ids are 144 random url-safe bits, and every way of guessing (unknown,
prefix, near miss, someone else's) gets the same answer as a plain unknown id."""

from __future__ import annotations

import base64
import re
import uuid
from pathlib import Path

import httpx

from tests.conftest import Server, random_file
from tests.dz import send_chunk

URL_SAFE_24 = re.compile(r"^[A-Za-z0-9_-]{24}$")


def near_misses(file_id: str) -> list[str]:
    flipped = ("A" if file_id[5] != "A" else "B").join((file_id[:5], file_id[6:]))
    return [
        file_id[:8],
        file_id[:-1],
        file_id + "A",
        flipped,
        file_id.swapcase(),
        "A" * 24,
        file_id[:12] + "%",
        "",
    ]


def test_ids_are_long_random_and_unique(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        ids = [client.put(f"/put/n{n}.txt", content=b"%d" % n).json()["id"] for n in range(30)]
    assert len(set(ids)) == len(ids)
    for file_id in ids:
        assert URL_SAFE_24.match(file_id)
        assert len(base64.urlsafe_b64decode(file_id)) == 18  # 144 bits
    # Not sequential or time-ordered: the ids in upload order are not sorted either way.
    assert ids != sorted(ids) and ids != sorted(ids, reverse=True)


def test_guesses_get_the_same_answer_as_unknown_ids(server: Server, tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as alice:
        record = alice.put("/put/secret.txt", content=b"secret").json()
        upload_id = str(uuid.uuid4())
        source = random_file(tmp_path / "half.bin", 2048)
        assert send_chunk(alice, source, upload_id, 0, 1024).status_code == 200
    file_id = record["id"]
    with httpx.Client(base_url=server.url, timeout=30) as mallory:
        unknown_download = mallory.get(f"/download/{'Z' * 24}")
        unknown_info = mallory.get(f"/api/files/{'Z' * 24}")
        assert unknown_download.status_code == unknown_info.status_code == 404
        for guess in near_misses(file_id):
            download = mallory.get(f"/download/{guess}")
            assert (
                download.status_code in (404, 405) if guess == "" else download.status_code == 404
            )
            if guess:
                assert download.json() == unknown_download.json(), guess
                info = mallory.get(f"/api/files/{guess}")
                assert (info.status_code, info.json()) == (404, unknown_info.json()), guess
        # Someone else's real file: downloadable by its full id (a capability link), but its
        # record looks exactly like one that doesn't exist. (An upload's dzuuid is a capability
        # too, like a tus upload URL: whoever names it may continue it; see docs/API.md.)
        assert mallory.get(f"/download/{file_id}").content == b"secret"
        foreign_info = mallory.get(f"/api/files/{file_id}")
        assert (foreign_info.status_code, foreign_info.json()) == (404, unknown_info.json())
        assert mallory.get(f"/upload/{uuid.uuid4()}").status_code == 404
        # Deleting someone else's: refused, and nothing changes for the owner.
        assert mallory.delete(f"/api/files/{file_id}").status_code in (403, 404)
    with httpx.Client(base_url=server.url, timeout=30, cookies=alice.cookies) as owner:
        assert owner.get(f"/upload/{upload_id}").json()["received"] == [0]
        assert owner.get(f"/api/files/{file_id}").status_code == 200
