"""XSS through file names (API JSON, downloads) and header injection through names.

The page itself is covered in a real browser by tests/web/test_browser.py (hostile names shown
as text, no script run, no CSP violation); here: what the server sends."""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

import httpx

from tests.conftest import Server
from tests.dz import chunk_fields
from tests.rawhttp import exchange, head, multipart

XSS_NAMES = [
    "<script>alert(1)</script>.html",
    '"><img src=x onerror=alert(1)>.png',
    "</script><script>alert(document.cookie)</script>",
    "<svg onload=alert(1)>.svg",
    "javascript:alert(1)",
    "{{constructor.constructor('alert(1)')()}}.txt",
    "'; DROP TABLE files; --.txt",
    "\u2028\u2029line-separators.js",
]
PAGE_PAYLOAD = b"<!doctype html><script>document.title='pwned'</script>"
KNOWN_HEADERS = {
    "content-type", "content-length", "content-disposition", "etag", "accept-ranges",
    "x-checksum-sha256", "cache-control", "set-cookie", "content-security-policy",
    "x-content-type-options", "referrer-policy", "date", "connection", "vary", "last-modified",
    "x-frame-options", "permissions-policy", "cross-origin-opener-policy",
    "cross-origin-resource-policy",
}  # fmt: skip


def test_names_in_the_api_are_inert(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        for number, name in enumerate(XSS_NAMES):
            fields = list(chunk_fields(str(uuid.uuid4()), 0, 1024, 10).items())
            body = multipart(fields, name.replace('"', "%22"), b"%010d" % number)
            chunked = client.post(
                "/upload",
                content=body,
                headers={"Content-Type": "multipart/form-data; boundary=rawb0undary"},
            )
            put = client.put(f"/put/{quote(name, safe='')}", content=PAGE_PAYLOAD + bytes([number]))
            for response in (chunked, put):
                assert response.status_code in (200, 201), response.text
                assert response.headers["content-type"] == "application/json"
                assert response.headers["x-content-type-options"] == "nosniff"
        listing = client.get("/api/files")
    assert listing.headers["content-type"] == "application/json"
    # Nothing in the JSON text a browser could take for markup, even if it sniffed it as HTML.
    assert "<" not in listing.text and ">" not in listing.text
    names = [record["name"] for record in listing.json()["files"]]
    assert len(names) == 2 * len(XSS_NAMES)
    for name in names:
        assert not set(name) & set('<>"\\/'), name
    # The SQL-looking name is a name like any other, and the table is still there.
    assert any(name.startswith("'; DROP TABLE files; --") for name in names)


def test_uploaded_html_is_never_rendered_by_the_server(server: Server) -> None:
    """An uploaded page or SVG comes back as an attachment of opaque bytes, not as a document of
    the server's origin (stored XSS)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for name in ("evil.html", "evil.svg", "evil.xhtml", "evil"):
            record = client.put(f"/put/{name}", content=PAGE_PAYLOAD + name.encode()).json()
            for method in ("GET", "HEAD"):
                response = client.request(method, record["url"])
                assert response.status_code == 200
                assert response.headers["content-type"] == "application/octet-stream"
                assert response.headers["content-disposition"].startswith("attachment;")
                assert response.headers["x-content-type-options"] == "nosniff"
                assert "default-src" in response.headers["content-security-policy"]


def raw_download_head(server: Server, url: str) -> tuple[int, list[str]]:
    response = exchange(server.port, head("GET", url))
    assert response is not None
    lines = response.raw_head.decode("latin-1").split("\r\n")
    return response.status, lines[1:]


def test_no_header_injection_through_names(server: Server) -> None:
    """CR, LF, NEL, Unicode line separators, and encoded forms of them in a name: the response
    head keeps exactly its own header lines (checked on the raw bytes, not a parsed view)."""
    names = [
        "a\r\nX-Injected: 1.txt",
        "b\nSet-Cookie: pfd_owner=attacker.txt",
        "c\rX-Injected: 1.txt",
        "d\u0085X-Injected: 1.txt",
        "e\u2028X-Injected: 1.txt",
        "f%0d%0aX-Injected: 1.txt",
        'g"; filename="other.exe',
        "h\x00X-Injected.txt",
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        urls = []
        for name in names:
            response = client.put(f"/put/{quote(name, safe='')}", content=name.encode())
            assert response.status_code == 201, response.text
            urls.append(response.json()["url"])
    for url in urls:
        status, lines = raw_download_head(server, url)
        assert status == 200
        header_names = [line.split(":", 1)[0].lower() for line in lines]
        assert set(header_names) <= KNOWN_HEADERS, header_names
        assert "x-injected" not in header_names
        assert header_names.count("set-cookie") <= 1
        disposition = next(line for line in lines if line.lower().startswith("content-disposition"))
        value = disposition.split(":", 1)[1].strip()
        assert all(32 <= ord(ch) < 127 for ch in value), value
        assert value.count('filename="') == 1 and value.count("filename*=") == 1
        assert 'filename="other.exe' not in value
        json.loads(json.dumps(value))  # plain text, nothing to escape from
