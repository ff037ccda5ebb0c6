"""Expiry, download limits, delete and vanished files, with a controllable clock (in-process)."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import httpx

from pyfiledrop import lifecycle
from pyfiledrop.meta import queries
from tests.conftest import ServerFactory
from tests.dz import send_chunk
from tests.harness import App, iso, put, running_app

HOUR = 3600
DAY = 24 * HOUR


def stored_path(app: App, record: dict[str, object]) -> Path:
    return app.settings.storage / str(record["name"])


def row(app: App, file_id: str) -> queries.StoredFile:
    stored = app.uploads.db.run_sync(queries.get_file, file_id)
    assert stored is not None
    return stored


def test_file_expires_and_its_link_says_410(tmp_path: Path) -> None:
    with running_app(tmp_path, expire_after=HOUR) as app:
        record = put(app.client, "report.pdf", b"x" * 1000)
        assert record["expires"] == iso(app.clock() + HOUR)
        assert app.client.get(record["url"]).status_code == 200
        app.clock.advance(HOUR - 1)
        assert app.client.get(record["url"]).status_code == 200
        app.clock.advance(1)
        gone = app.client.get(record["url"])
        assert gone.status_code == 410
        assert gone.json() == {
            "error": "this link has expired",
            "code": "gone",
            "reason": "expired",
        }
        page = app.client.get(record["url"], headers={"Accept": "text/html,*/*"})
        assert page.status_code == 410
        assert page.headers["content-type"].startswith("text/html")
        assert "this link has expired" in page.text and "<script" not in page.text
        assert app.client.get(f"/api/files/{record['id']}").status_code == 410
        assert app.client.get("/api/files").json() == {"files": []}
        # The bytes stay until the janitor's pass, which removes them and keeps a tombstone.
        assert stored_path(app, record).exists()
        removed = app.run(lifecycle.purge, app.uploads.db, app.uploads.storage, app.clock())
        assert [(r.file.id, r.reason) for r in removed] == [(record["id"], "expired")]
        assert not stored_path(app, record).exists()
        assert row(app, str(record["id"])).gone == "expired"
        assert app.client.get(record["url"]).status_code == 410
        # Tombstones are forgotten after a while; then the link is simply unknown.
        app.clock.advance(lifecycle.TOMBSTONE_SECONDS + 1)
        app.run(lifecycle.purge, app.uploads.db, app.uploads.storage, app.clock())
        assert app.client.get(record["url"]).status_code == 404


def test_uploader_may_only_shorten_the_life(tmp_path: Path) -> None:
    with running_app(tmp_path, expire_after=7 * DAY) as app:
        short = put(app.client, "a.txt", b"a", expires_in="90m")
        assert short["expires"] == iso(app.clock() + 90 * 60)
        long = put(app.client, "b.txt", b"b", expires_in="30d")
        assert long["expires"] == iso(app.clock() + 7 * DAY)  # capped at the server's
        bad = app.client.put("/put/c.txt", content=b"c", params={"expires_in": "soon"})
        assert bad.status_code == 400 and "expires_in" in bad.json()["error"]
        assert not (app.settings.storage / "c.txt").exists()
    with running_app(tmp_path / "never") as app:
        assert put(app.client, "d.txt", b"d")["expires"] is None
        assert put(app.client, "e.txt", b"e", expires_in="60")["expires"] is not None


def test_chunked_upload_carries_the_options(tmp_path: Path) -> None:
    source = tmp_path / "chunked.bin"
    source.write_bytes(os.urandom(3000))
    with running_app(tmp_path / "app") as app:
        app.client.get("/healthz")
        upload_id = str(uuid.uuid4())
        options = {"expires_in": "2h", "max_downloads": "1"}
        for index in range(3):
            response = send_chunk(app.client, source, upload_id, index, 1000, fields=options)
            assert response.status_code == 200, response.text
        record = response.json()["file"]
        assert record["max_downloads"] == 1 and record["downloads"] == 0
        assert record["expires"] == iso(app.clock() + 2 * HOUR)
        finished = app.client.post(f"/upload/{upload_id}/finish").json()["file"]
        assert finished["delete_token"] == record["delete_token"]
        state = app.client.get(f"/upload/{upload_id}").json()
        assert state["file"]["delete_token"] == record["delete_token"]
        bad = send_chunk(
            app.client, source, str(uuid.uuid4()), 0, 1000, fields={"max_downloads": "0"}
        )
        assert bad.status_code == 400


def test_one_time_link_works_once(tmp_path: Path) -> None:
    data = os.urandom(5000)
    with running_app(tmp_path) as app:
        record = put(app.client, "once.bin", data, max_downloads="1")
        stranger = app.other_client()
        first = stranger.get(record["url"])
        assert first.status_code == 200 and first.content == data
        second = stranger.get(record["url"])
        assert second.status_code == 410 and second.json()["reason"] == "used_up"
        assert app.client.get(record["url"]).status_code == 410  # for the owner too
        assert app.client.get("/api/files").json() == {"files": []}


def test_resumed_download_does_not_count_twice(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    with running_app(tmp_path) as app:
        record = put(app.client, "resume.bin", data, max_downloads="2")
        url = record["url"]
        head = app.client.get(url, headers={"Range": "bytes=0-3999"})  # cut after 4000 bytes
        assert head.status_code == 206
        app.clock.advance(HOUR)
        rest = app.client.get(url, headers={"Range": "bytes=4000-"})
        assert rest.status_code == 206
        assert hashlib.sha256(head.content + rest.content).hexdigest() == record["sha256"]
        assert row(app, record["id"]).downloads == 1
        assert app.client.get(url).status_code == 200  # the second (and last) download
        assert row(app, record["id"]).downloads == 2
        assert app.client.get(url, headers={"Range": "bytes=10-"}).status_code == 206  # resume
        assert app.client.get(url).status_code == 410
        # Once the resume window has passed, a Range request can't get around the limit.
        app.clock.advance(lifecycle.RESUME_WINDOW_SECONDS + 1)
        assert app.client.get(url, headers={"Range": "bytes=10-"}).status_code == 410
        app.run(lifecycle.purge, app.uploads.db, app.uploads.storage, app.clock())
        assert not stored_path(app, record).exists()
        assert row(app, record["id"]).gone == "used_up"


def test_range_without_a_counted_download_counts(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        record = put(app.client, "r.bin", os.urandom(1000), max_downloads="1")
        assert app.client.get(record["url"], headers={"Range": "bytes=1-"}).status_code == 206
        assert app.client.get(record["url"]).status_code == 410
        # Unlimited files count only downloads from byte 0 (HEAD is not a download).
        free = put(app.client, "u.bin", os.urandom(1000))
        app.client.get(free["url"], headers={"Range": "bytes=100-"})
        app.client.head(free["url"])
        app.client.get(free["url"])
        assert app.client.get(f"/api/files/{free['id']}").json()["downloads"] == 1


def test_delete_by_owner_and_nobody_else(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        record = put(app.client, "mine.txt", b"mine")
        stranger = app.other_client()
        refused = stranger.delete(f"/api/files/{record['id']}")
        unknown = stranger.delete("/api/files/AAAAAAAAAAAAAAAAAAAAAAAA")
        wrong_token = stranger.delete(
            f"/api/files/{record['id']}", headers={"X-Delete-Token": "x" * 32}
        )
        for response in (refused, unknown, wrong_token):
            assert response.status_code == 404
            assert response.json()["error"] == "no such file, or not yours to delete"
        assert stored_path(app, record).exists()
        assert stranger.get(record["url"]).status_code == 200

        deleted = app.client.delete(f"/api/files/{record['id']}")
        assert deleted.status_code == 200
        assert deleted.json() == {"status": "deleted", "id": record["id"]}
        assert not stored_path(app, record).exists()
        gone = stranger.get(record["url"])
        assert gone.status_code == 410 and gone.json()["reason"] == "deleted"
        again = app.client.delete(f"/api/files/{record['id']}")
        assert again.status_code == 410
        assert app.client.get("/api/files").json() == {"files": []}


def test_delete_token_works_without_the_cookie(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        by_header = put(app.client, "h.txt", b"h")
        by_query = put(app.client, "q.txt", b"q")
        assert len(by_header["delete_token"]) == 48
        listed = app.client.get("/api/files").json()["files"]
        assert all("delete_token" not in entry for entry in listed)
        stranger = app.other_client()
        ok = stranger.delete(
            f"/api/files/{by_header['id']}", headers={"X-Delete-Token": by_header["delete_token"]}
        )
        assert ok.status_code == 200
        # One file's token does not delete another file.
        cross = stranger.delete(f"/api/files/{by_query['id']}?token={by_header['delete_token']}")
        assert cross.status_code == 404
        ok = stranger.delete(f"/api/files/{by_query['id']}?token={by_query['delete_token']}")
        assert ok.status_code == 200
        assert not stored_path(app, by_header).exists() and not stored_path(app, by_query).exists()
        # Only the hash is kept.
        assert row(app, by_query["id"]).delete_token == lifecycle.token_hash(
            by_query["delete_token"]
        )


def test_deleting_a_deduplicated_file_keeps_the_other_links(tmp_path: Path) -> None:
    data = os.urandom(20_000)
    with running_app(tmp_path) as app:
        first = put(app.client, "first.bin", data)
        stranger = app.other_client()
        second = put(stranger, "second.bin", data)
        assert row(app, second["id"]).linked_from == first["id"]
        assert stored_path(app, first).stat().st_ino == stored_path(app, second).stat().st_ino
        assert app.client.delete(f"/api/files/{first['id']}").status_code == 200
        assert not stored_path(app, first).exists()
        kept = stranger.get(second["url"])
        assert kept.status_code == 200 and kept.content == data
        # Deleting the link that is left removes the last copy.
        assert stranger.delete(f"/api/files/{second['id']}").status_code == 200
        assert list(app.settings.storage.iterdir()) == []


def test_file_deleted_by_hand_is_reported_gone(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        seen = put(app.client, "seen.txt", b"seen")
        listed = put(app.client, "listed.txt", b"listed")
        quiet = put(app.client, "quiet.txt", b"quiet")
        for record in (seen, listed, quiet):
            stored_path(app, record).unlink()
        info = app.client.get(f"/api/files/{seen['id']}")
        assert info.status_code == 410 and info.json()["reason"] == "missing"
        assert app.client.get("/api/files").json() == {"files": []}
        assert row(app, listed["id"]).gone == "missing"
        # The janitor notices the ones nobody asked for.
        assert row(app, quiet["id"]).gone == "missing"  # the list looked at all of them
        fresh = put(app.client, "fresh.txt", b"fresh")
        stored_path(app, fresh).unlink()
        removed = app.run(lifecycle.purge, app.uploads.db, app.uploads.storage, app.clock())
        assert [(r.file.id, r.reason) for r in removed] == [(fresh["id"], "missing")]
        assert app.client.get(fresh["url"]).status_code == 410


def test_others_cannot_probe_file_info(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        record = put(app.client, "p.txt", b"p")
        stored_path(app, record).unlink()
        stranger = app.other_client()
        assert stranger.get(f"/api/files/{record['id']}").status_code == 404
        assert app.client.get(f"/api/files/{record['id']}").status_code == 410


def test_expiry_and_delete_over_real_http(server_factory: ServerFactory) -> None:
    server = server_factory("-a", "--expire-after", "1h")  # expired by hand below
    with httpx.Client(base_url=server.url, timeout=10) as client:
        record = client.put("/put/soon.txt", content=b"soon").json()
        keep = client.put("/put/keep.txt", content=b"keep").json()
        assert client.get(record["url"]).content == b"soon"
        deleted = httpx.delete(
            f"{server.url}/api/files/{keep['id']}", headers={"X-Delete-Token": keep["delete_token"]}
        )
        assert deleted.status_code == 200
        assert not (server.storage_dir / "keep.txt").exists()
        assert record["expires"] is not None
        server.expire(record["id"])
        assert client.get(record["url"]).status_code == 410


def test_a_used_up_one_time_link_serves_no_range_to_a_stranger(tmp_path: Path) -> None:
    """Before: after the one counted download, `Range: bytes=1-` (plus a guessed first byte)
    gave anyone without the downloader's cookie the file for 24 hours."""
    data = os.urandom(10_000)
    with running_app(tmp_path) as app:
        record = put(app.client, "once.bin", data, max_downloads="1")
        downloader, stranger = app.other_client(), app.other_client()
        first = downloader.get(record["url"], headers={"Range": "bytes=0-3999"})
        assert first.status_code == 206
        for attempt in ("bytes=1-", "bytes=4000-"):
            refused = stranger.get(record["url"], headers={"Range": attempt})
            assert refused.status_code == 410, attempt
        token = first.headers["x-resume-token"]
        forged = stranger.get(
            record["url"], headers={"Range": "bytes=4000-", "X-Resume-Token": "0" * 32}
        )
        assert forged.status_code == 410
        # The downloader resumes: its browser sends the cookie back, other clients the header.
        rest = downloader.get(record["url"], headers={"Range": "bytes=4000-"})
        assert rest.status_code == 206 and first.content + rest.content == data
        by_header = stranger.get(
            record["url"], headers={"Range": "bytes=9000-", "X-Resume-Token": token}
        )
        assert by_header.status_code == 206 and by_header.content == data[9000:]
        app.clock.advance(lifecycle.RESUME_WINDOW_SECONDS + 1)
        late = downloader.get(record["url"], headers={"Range": "bytes=4000-"})
        assert late.status_code == 410
