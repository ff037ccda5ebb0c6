"""Cross-site requests: no CORS headers unless configured, and every state-changing request
from another origin refused with 403 before it touches anything."""

from __future__ import annotations

import uuid

import httpx

from tests.conftest import Server, ServerFactory
from tests.dz import chunk_fields

FOREIGN = ["https://evil.example", "null", "http://127.0.0.1:1", "http://localhost.evil.example"]


def unsafe_requests(server: Server, file_id: str) -> list[tuple[str, str, dict[str, object]]]:
    upload_id = str(uuid.uuid4())
    fields = chunk_fields(upload_id, 0, 1024, 3)
    return [
        ("POST", "/upload", {"data": fields, "files": {"file": ("x.txt", b"abc")}}),
        ("POST", "/upload", {"files": {"file": ("x.txt", b"abc")}}),
        ("POST", f"/upload/{upload_id}/finish", {}),
        ("PUT", "/put/x.txt", {"content": b"abc"}),
        ("POST", "/put/x.txt", {"content": b"abc"}),
        ("DELETE", f"/api/files/{file_id}", {}),
        ("POST", "/files/", {"headers": {"Tus-Resumable": "1.0.0", "Upload-Length": "3"}}),
        ("PATCH", f"/files/{upload_id}", {"content": b"abc"}),
    ]


def test_foreign_origins_cannot_change_anything(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        mine = client.put("/put/mine.txt", content=b"mine").json()
        before = server.stored_files()
        for origin in FOREIGN:
            for method, path, extra in unsafe_requests(server, mine["id"]):
                headers = {"Origin": origin, **extra.pop("headers", {})}  # type: ignore[dict-item]
                response = client.request(method, path, headers=headers, **extra)  # type: ignore[arg-type]
                assert response.status_code == 403, (origin, method, path, response.text)
                assert "cross-site" in response.json()["error"]
                assert not any(h.startswith("access-control-") for h in response.headers)
        assert server.stored_files() == before
        assert client.get(f"/api/files/{mine['id']}").status_code == 200  # not deleted
        same = client.put(
            "/put/same.txt", content=b"same", headers={"Origin": f"http://127.0.0.1:{server.port}"}
        )
        assert same.status_code == 201


def test_no_cors_headers_by_default(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.put("/put/f.txt", content=b"f")
        responses = [
            client.get("/api/files", headers={"Origin": "https://evil.example"}),
            client.get("/healthz", headers={"Origin": "https://evil.example"}),
            client.request(
                "OPTIONS",
                "/upload",
                headers={
                    "Origin": "https://evil.example",
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                },
            ),
        ]
    for response in responses:
        assert not any(h.startswith("access-control-") for h in response.headers), response.headers
    # The owner cookie is not sent on cross-site subrequests by browsers (SameSite=Lax), nor
    # readable by scripts (HttpOnly).
    cookie = responses[0].headers.get("set-cookie") or ""
    assert not cookie or ("HttpOnly" in cookie and "SameSite=Lax" in cookie)


def test_a_configured_origin_is_allowed_and_only_it(server_factory: ServerFactory) -> None:
    server = server_factory("--cors-origin", "https://ok.example")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        preflight = client.request(
            "OPTIONS",
            "/put/x.txt",
            headers={"Origin": "https://ok.example", "Access-Control-Request-Method": "PUT"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://ok.example"
        allowed = client.put("/put/x.txt", content=b"x", headers={"Origin": "https://ok.example"})
        assert allowed.status_code == 201
        assert allowed.headers["access-control-allow-origin"] == "https://ok.example"
        assert allowed.headers["access-control-allow-credentials"] == "true"
        other = client.put("/put/y.txt", content=b"y", headers={"Origin": "https://evil.example"})
        assert other.status_code == 403
        assert "access-control-allow-origin" not in other.headers
    assert [p.name for p in server.stored_files()] == ["x.txt"]


def test_sec_fetch_site_decides_where_a_browser_sends_it(server: Server) -> None:
    own = f"http://127.0.0.1:{server.port}"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        cases = [
            # (headers, allowed): a browser's own word first, then Origin, then Referer.
            ({"Sec-Fetch-Site": "same-origin", "Origin": "null"}, True),  # no-referrer forms
            ({"Sec-Fetch-Site": "none"}, True),  # typed into the address bar
            ({"Sec-Fetch-Site": "cross-site", "Origin": own}, False),
            ({"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"}, False),
            ({"Referer": f"{own}/login"}, True),
            ({"Referer": "https://evil.example/page"}, False),
            ({"Origin": "null", "Referer": f"{own}/"}, False),
        ]
        for headers, allowed in cases:
            response = client.put("/put/h.txt", content=b"h", headers=headers)
            assert response.status_code == (201 if allowed else 403), (headers, response.text)


def test_any_origin_means_without_credentials(server_factory: ServerFactory) -> None:
    listed = "https://listed.example"
    server = server_factory("--cors-origin", "*", "--cors-origin", listed)
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "3"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        preflights = {
            origin: client.request(
                "OPTIONS",
                "/files/",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            for origin in ("https://anyone.example", listed)
        }
        assert preflights[listed].headers["access-control-allow-credentials"] == "true"
        assert preflights["https://anyone.example"].headers["access-control-allow-origin"] == "*"
        assert (
            "access-control-allow-credentials" not in preflights["https://anyone.example"].headers
        )
        # Any origin: `*`, never reflected, never with credentials, no delete token to read.
        anyone = client.post("/files/", headers={"Origin": "https://anyone.example", **tus})
        assert anyone.status_code == 201, anyone.text
        assert anyone.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in anyone.headers
        exposed = anyone.headers["access-control-expose-headers"]
        assert "Location" in exposed and "Delete-Token" not in exposed
        # A listed origin: named, with credentials, and it may read the delete token.
        mine = client.post("/files/", headers={"Origin": listed, **tus})
        assert mine.headers["access-control-allow-origin"] == listed
        assert mine.headers["access-control-allow-credentials"] == "true"
        assert "X-Pyfiledrop-Delete-Token" in mine.headers["access-control-expose-headers"]
        # The visitor's cookies must not act for an unlisted site.
        client.get("/healthz")
        assert client.cookies.get("pfd_owner")
        with_cookie = client.post("/files/", headers={"Origin": "https://anyone.example", **tus})
        assert with_cookie.status_code == 403
        # The server's own page, with its cookie, is not "any origin".
        own = f"http://127.0.0.1:{server.port}"
        for headers in ({"Origin": own}, {"Origin": own, "Sec-Fetch-Site": "same-origin"}):
            assert client.put("/put/own.txt", content=b"o", headers=headers).status_code == 201
        assert "access-control-allow-credentials" not in with_cookie.headers
        assert client.request("OPTIONS", "/files/", headers={"Origin": "null",
            "Access-Control-Request-Method": "POST"}).headers.get(
            "access-control-allow-origin") is None  # fmt: skip
