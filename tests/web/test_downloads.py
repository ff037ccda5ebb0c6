"""Downloads, the file list and owners, over real HTTP."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import Server, ServerFactory, random_file

MiB = 1024 * 1024


def put(client: httpx.Client, name: str, data: bytes) -> dict[str, object]:
    response = client.put(f"/put/{quote(name)}", content=data)
    assert response.status_code == 201, response.text
    record: dict[str, object] = response.json()
    return record


def test_download_whole_and_ranges(server: Server, tmp_path: Path) -> None:
    data = random_file(tmp_path / "d.bin", 3 * MiB + 7).read_bytes()
    with httpx.Client(base_url=server.url) as client:
        record = put(client, "d.bin", data)
        whole = client.get(str(record["url"]))
        assert whole.content == data
        assert whole.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
        assert whole.headers["x-checksum-sha256"] == record["sha256"]
        assert whole.headers["accept-ranges"] == "bytes"
        part = client.get(str(record["url"]), headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == data[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        tail = client.get(str(record["url"]), headers={"Range": "bytes=-10"})
        assert tail.content == data[-10:]
        rest = client.get(str(record["url"]), headers={"Range": f"bytes={len(data) - 5}-"})
        assert rest.content == data[-5:]
        beyond = client.get(str(record["url"]), headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416
        stale = client.get(
            str(record["url"]), headers={"Range": "bytes=0-9", "If-Range": '"other"'}
        )
        assert stale.status_code == 200 and stale.content == data


def test_download_by_prefix_or_name_is_404(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        record = put(client, "secret.txt", b"secret")
        file_id = str(record["id"])
        assert len(file_id) >= 22
        for guess in (file_id[:8], file_id[:-1], "secret.txt", "../storage/secret.txt", "%2e%2e"):
            response = client.get(f"/download/{guess}")
            assert response.status_code == 404, guess
            assert response.json()["error"]


def test_downloads_disabled_by_default(server_factory: ServerFactory) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.url) as client:
        record = put(client, "x.txt", b"x")
        response = client.get(str(record["url"]))
    assert response.status_code == 403
    assert "disabled" in response.json()["error"]


def test_content_disposition_is_safe_for_any_name(server: Server) -> None:
    names = ["naïve résumé ✓.pdf", 'quote".txt', "crlf\r\nSet-Cookie: x=1.txt", "日本語.txt"]
    with httpx.Client(base_url=server.url) as client:
        for name in names:
            record = put(client, name, b"data")
            response = client.get(str(record["url"]))
            disposition = response.headers["content-disposition"]
            assert "\r" not in disposition and "\n" not in disposition
            assert "set-cookie" not in {k.lower() for k in response.headers if k != "set-cookie"}
            assert disposition.startswith("attachment; ")
            assert f"filename*=UTF-8''{quote(str(record['name']), safe='')}" in disposition
            assert response.headers["content-type"] == "application/octet-stream"


def test_each_owner_sees_only_their_files(server: Server) -> None:
    with httpx.Client(base_url=server.url) as alice, httpx.Client(base_url=server.url) as bob:
        mine = put(alice, "alice.txt", b"a")
        put(bob, "bob.txt", b"b")
        assert [f["name"] for f in alice.get("/api/files").json()["files"]] == ["alice.txt"]
        assert [f["name"] for f in bob.get("/api/files").json()["files"]] == ["bob.txt"]
        assert alice.get(f"/api/files/{mine['id']}").status_code == 200
        assert bob.get(f"/api/files/{mine['id']}").status_code == 404
        cookie = alice.cookies["pfd_owner"]
    assert len(cookie) == 43
    response = httpx.get(f"{server.url}/healthz")
    set_cookie = response.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie


def test_list_hides_files_removed_behind_the_servers_back(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        record = put(client, "gone.txt", b"bye")
        (server.storage_dir / "gone.txt").unlink()
        assert client.get("/api/files").json()["files"] == []
        assert client.get(str(record["url"])).status_code == 410


def test_healthz(server: Server) -> None:
    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_cross_site_uploads_are_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url) as client:
        foreign = client.put("/put/x.txt", content=b"x", headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        same = client.put(
            "/put/x.txt", content=b"x", headers={"Origin": f"http://127.0.0.1:{server.port}"}
        )
        assert same.status_code == 201
        assert "access-control-allow-origin" not in foreign.headers
