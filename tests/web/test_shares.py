"""The recipient page at a shared link and the PUT answer's links, in-process."""

from __future__ import annotations

import hashlib
import html
import io
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.web.auth import LOCKOUT_FAILURES
from tests.harness import app_client

DATA = b"hello, recipient\n" * 1000


def test_put_answers_absolute_links_as_json_by_default(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        response = client.put("/put/a.txt", content=DATA)
        assert response.status_code == 201
        record = response.json()
        assert record["url"] == f"http://testserver/download/{record['id']}"
        assert record["page_url"] == f"http://testserver/f/{record['id']}"
        assert record["sha256"] == hashlib.sha256(DATA).hexdigest()


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/put/a.txt?text", {}), ("/put/a.txt", {"Accept": "text/plain"})],
)
def test_put_prints_the_link_and_a_newline_when_asked_for_text(
    tmp_path: Path, path: str, headers: dict[str, str]
) -> None:
    with app_client(tmp_path, public_url="https://files.example.org/drop") as client:
        response = client.put(path, content=DATA, headers=headers)
        assert response.status_code == 201
        assert response.headers["content-type"].startswith("text/plain")
        [record] = client.get("/api/files").json()["files"]
        assert response.text == f"https://files.example.org/drop/download/{record['id']}\n"


def test_put_text_mode_still_takes_file_options(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        response = client.put("/put/a.txt?text&max_downloads=1", content=DATA)
        assert response.status_code == 201
        [record] = client.get("/api/files").json()["files"]
        assert record["max_downloads"] == 1


def test_other_answers_keep_relative_links_and_gain_the_page(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        client.put("/put/a.txt", content=DATA)
        [record] = client.get("/api/files").json()["files"]
        assert record["url"] == f"/download/{record['id']}"
        assert record["page_url"] == f"/f/{record['id']}"


def test_recipient_page_shows_the_facts_and_links_the_raw_file(tmp_path: Path) -> None:
    name = '<b>"report" & co</b>.txt'
    with app_client(tmp_path) as client:
        record = client.put("/put/x.txt?max_downloads=3&expires_in=1d", content=DATA).json()
        file_id = record["id"]
        client.cookies.clear()  # a recipient: no cookie of the uploader's
        page = client.get(f"/f/{file_id}", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        text = page.text
        assert record["sha256"] in text
        assert "x.txt" in text
        assert f'href="/download/{file_id}"' in text
        assert "3 of 3" in text  # downloads left
        assert "UTC" in text
        assert client.get(f"/download/{file_id}").content == DATA
        assert "2 of 3" in client.get(f"/f/{file_id}").text
        # A hostile name is text, not markup.
        hostile = client.put("/put/" + name, content=DATA).json()
        shown = client.get(f"/f/{hostile['id']}").text
        assert "<b>" not in shown.split("<main", 1)[1]
        assert html.escape(hostile["name"]) in shown


def test_recipient_page_of_a_gone_link_is_the_410_page(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        record = client.put("/put/once.txt?max_downloads=1", content=DATA).json()
        assert client.get(record["url"]).content == DATA
        page = client.get(f"/f/{record['id']}")
        assert page.status_code == 410
        assert page.headers["content-type"].startswith("text/html")
        assert "Link no longer available" in page.text
        assert client.get("/f/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
        assert client.get("/f/bad id").status_code == 404


def test_recipient_page_says_when_downloads_are_off(tmp_path: Path) -> None:
    with app_client(tmp_path, allow_downloads=False) as client:
        record = client.put("/put/a.txt", content=DATA).json()
        page = client.get(f"/f/{record['id']}")
        assert page.status_code == 403
        assert "downloads are disabled" in page.text


def test_recipient_page_needs_no_upload_password(tmp_path: Path) -> None:
    with app_client(tmp_path, password="s3cret-pass") as client:
        auth = {"Authorization": "Bearer s3cret-pass"}
        record = client.put("/put/a.txt", content=DATA, headers=auth).json()
        assert client.get(f"/f/{record['id']}").status_code == 200
        assert client.get("/api/files").status_code == 401


# ---- shares: several files behind one link ------------------------------------------------


def put_files(client: Any, count: int) -> list[dict[str, Any]]:
    records = []
    for number in range(count):
        data = f"file {number}\n".encode() * (1000 + number)
        records.append(client.put(f"/put/f{number}.txt", content=data).json())
    return records


def zip_entries(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {
            info.filename: hashlib.sha256(archive.read(info)).hexdigest()
            for info in archive.infolist()
        }


def test_share_lists_its_files_and_zips_them_on_the_fly(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        records = put_files(client, 3)
        created = client.post("/api/shares", json={"files": [r["id"] for r in records]})
        assert created.status_code == 201, created.text
        share = created.json()
        assert share["page_url"] == f"http://testserver/s/{share['id']}"
        assert [f["id"] for f in share["files"]] == [r["id"] for r in records]

        client.cookies.clear()  # the recipient
        page = client.get(f"/s/{share['id']}")
        assert page.status_code == 200
        for record in records:
            assert record["name"] in page.text and record["sha256"] in page.text
        zipped = client.get(f"/s/{share['id']}/zip")
        assert zipped.status_code == 200
        assert zipped.headers["content-type"] == "application/zip"
        assert int(zipped.headers["content-length"]) == len(zipped.content)
        assert zip_entries(zipped.content) == {r["name"]: r["sha256"] for r in records}
        one = client.get(f"/s/{share['id']}/file/{records[1]['id']}")
        assert hashlib.sha256(one.content).hexdigest() == records[1]["sha256"]


def test_share_limits_count_for_the_share(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        records = put_files(client, 2)
        ids = [r["id"] for r in records]
        share = client.post("/api/shares", json={"files": ids, "max_downloads": 2}).json()
        assert share["max_downloads"] == 2
        assert "2 of 2" in client.get(f"/s/{share['id']}").text
        assert client.get(f"/s/{share['id']}/zip").status_code == 200
        assert client.get(f"/s/{share['id']}/file/{ids[0]}").status_code == 200
        for path in ("", "/zip", f"/file/{ids[0]}"):
            gone = client.get(f"/s/{share['id']}{path}")
            assert gone.status_code == 410
            assert "download limit" in gone.text
        # The files' own links are still there: the share's limit is the share's.
        assert client.get(f"/download/{ids[0]}").status_code == 200


def test_share_expires(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    with app_client(tmp_path) as client:
        client.app.state.uploads.clock = lambda: clock[0]  # type: ignore[attr-defined]
        records = put_files(client, 1)
        share = client.post(
            "/api/shares", json={"files": [records[0]["id"]], "expires_in": "1h"}
        ).json()
        assert share["expires"] is not None
        assert client.get(f"/s/{share['id']}").status_code == 200
        clock[0] += 3601
        expired = client.get(f"/s/{share['id']}/zip")
        assert expired.status_code == 410 and "expired" in expired.text


def test_only_ones_own_files_can_be_shared(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        [record] = put_files(client, 1)
        client.cookies.clear()
        refused = client.post("/api/shares", json={"files": [record["id"]]})
        assert refused.status_code == 404
        assert client.post("/api/shares", json={"files": []}).status_code == 400
        assert client.post("/api/shares", content=b"nope").status_code == 400
        assert client.get("/s/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404


# ---- download passwords -------------------------------------------------------------------


def key_from(page: str, path: str) -> str:
    found = re.search(re.escape(path) + r"\?key=([0-9a-f.]+)", page)
    assert found, page
    return found.group(1)


def test_share_password_form_then_keyed_links(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        records = put_files(client, 2)
        ids = [r["id"] for r in records]
        share = client.post("/api/shares", json={"files": ids, "password": "open sesame"}).json()
        assert share["password"] is True
        client.cookies.clear()
        locked = client.get(f"/s/{share['id']}")
        assert locked.status_code == 200 and 'type="password"' in locked.text
        assert records[0]["name"] not in locked.text
        wrong = client.post(f"/s/{share['id']}", data={"password": "nope"})
        assert wrong.status_code == 401 and "Wrong password" in wrong.text
        assert client.get(f"/s/{share['id']}/zip").status_code == 403
        assert client.get(f"/download/{ids[0]}").status_code == 403  # the files' own links too

        opened = client.post(f"/s/{share['id']}", data={"password": "open sesame"})
        assert opened.status_code == 200
        assert records[0]["name"] in opened.text
        key = key_from(opened.text, f"/s/{share['id']}/zip")
        zipped = client.get(f"/s/{share['id']}/zip", params={"key": key})
        assert zip_entries(zipped.content) == {r["name"]: r["sha256"] for r in records}
        assert client.get(f"/s/{share['id']}", params={"key": key}).status_code == 200
        assert client.get(f"/s/{share['id']}/zip", params={"key": key + "0"}).status_code == 403
        header = {"X-Download-Password": "open sesame"}
        assert client.get(f"/download/{ids[1]}", headers=header).status_code == 200


def test_file_password_and_throttle(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        [record] = put_files(client, 1)
        file_id = record["id"]
        answer = client.post(f"/api/files/{file_id}/password", json={"password": "pw"})
        assert answer.status_code == 200
        assert (
            client.post(f"/api/files/{file_id}/password", json={"password": ""}).status_code == 400
        )
        client.cookies.clear()
        assert 'type="password"' in client.get(f"/f/{file_id}").text
        assert (
            client.post(f"/api/files/{file_id}/password", json={"password": "x"}).status_code == 404
        )
        opened = client.post(f"/f/{file_id}", data={"password": "pw"})
        key = key_from(opened.text, f"/download/{file_id}")
        assert (
            hashlib.sha256(
                client.get(f"/download/{file_id}", params={"key": key}).content
            ).hexdigest()
            == record["sha256"]
        )

        throttle = client.app.state.download_throttle  # type: ignore[attr-defined]
        for _ in range(LOCKOUT_FAILURES):
            throttle.fail("testclient", "a download password")
        locked = client.post(f"/f/{file_id}", data={"password": "pw"})
        assert locked.status_code == 429 and "too many wrong passwords" in locked.text.lower()
        raw = client.get(f"/download/{file_id}", headers={"X-Download-Password": "pw"})
        assert raw.status_code == 403 and "too many" in raw.json()["error"]


def test_put_with_a_download_password(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        header = {"X-Download-Password": "hunter2"}
        record = client.put("/put/p.txt", content=DATA, headers=header).json()
        assert client.get(record["url"]).status_code == 403
        assert client.get(record["url"], headers=header).content == DATA
        too_long = {"X-Download-Password": "x" * 2000}
        assert client.put("/put/q.txt", content=DATA, headers=too_long).status_code == 400
        assert [f["name"] for f in client.get("/api/files").json()["files"]] == ["p.txt"]


def test_a_protected_file_is_not_shared_without_a_password(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        [record] = put_files(client, 1)
        client.post(f"/api/files/{record['id']}/password", json={"password": "pw"})
        refused = client.post("/api/shares", json={"files": [record["id"]]})
        assert refused.status_code == 400 and "download password" in refused.json()["error"]
        shared = client.post("/api/shares", json={"files": [record["id"]], "password": "new"})
        assert shared.status_code == 201
        header = {"X-Download-Password": "new"}
        assert client.get(f"/download/{record['id']}", headers=header).status_code == 200
