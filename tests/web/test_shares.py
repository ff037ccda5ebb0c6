"""The recipient page at a shared link and the PUT answer's links, in-process."""

from __future__ import annotations

import hashlib
import html
from pathlib import Path

import pytest

from tests.inproc import app_client

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
