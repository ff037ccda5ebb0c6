"""The upload page in-process: what it serves, the config it hands Dropzone, and its headers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from pyfiledrop.web import page
from tests.conftest import ServerFactory
from tests.harness import page_client

CONFIG_BLOCK = re.compile(
    r'<script type="application/json" id="pfd-config">(?P<json>.*?)</script>', re.S
)


def client_for(tmp_path: Path, **overrides: Any) -> TestClient:
    return page_client(tmp_path, **{"allow_downloads": False, **overrides})


def config_of(html: str) -> dict[str, Any]:
    match = CONFIG_BLOCK.search(html)
    assert match, "the page carries its config as a JSON data block"
    config: dict[str, Any] = json.loads(match.group("json"))
    return config


def script_sources(html: str) -> list[str]:
    return re.findall(r'<script[^>]*\bsrc="([^"]+)"', html)


def test_page_is_served_with_defaults(tmp_path: Path) -> None:
    response = client_for(tmp_path).get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    config = config_of(response.text)
    assert config["dropzone"] == {
        "url": "/upload",
        "method": "post",
        "paramName": "file",
        "chunking": True,
        "forceChunking": True,
        "parallelChunkUploads": 4,
        "parallelUploads": page.PARALLEL_FILES,
        "retryChunks": True,
        "retryChunksLimit": page.RETRY_CHUNKS_LIMIT,
        "timeout": 120000,
        "maxFilesize": 100000,
        "chunkSize": 1024 * 1024,  # a number still: auto's smallest
        "filesizeBase": 1024,
    }
    assert config["chunkSizeAuto"] == {"min": 1024 * 1024, "max": 64 * 1024 * 1024, "chunks": 128}
    assert config["allowDownloads"] is False
    assert config["filesUrl"] == "/api/files"
    assert config["finishUrl"] == "/upload/{uuid}/finish"
    assert config["statusUrl"] == "/upload/{uuid}"


def test_config_follows_settings(tmp_path: Path) -> None:
    client = client_for(
        tmp_path,
        max_size=512,
        timeout=30000,
        chunk_size=8 * 1024 * 1024,
        chunks_in_flight=6,
        force_chunking=False,
        allow_downloads=True,
    )
    config = config_of(client.get("/").text)
    dz = config["dropzone"]
    assert (dz["maxFilesize"], dz["timeout"], dz["chunkSize"]) == (512, 30000, 8 * 1024 * 1024)
    assert config["chunkSizeAuto"] is None  # a number is a fixed size, as in the article
    assert dz["parallelChunkUploads"] == 6
    assert dz["forceChunking"] is False
    assert config["allowDownloads"] is True


def test_parallel_chunks_disabled(tmp_path: Path) -> None:
    config = config_of(client_for(tmp_path, parallel_chunks=False).get("/").text)
    assert config["dropzone"]["parallelChunkUploads"] is False


def test_config_json_cannot_close_its_script_element() -> None:
    text = page.json_for_html({"x": "</script><img src=x onerror=alert(1)>&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"x": "</script><img src=x onerror=alert(1)>&"}


def test_page_has_no_inline_script_or_style(tmp_path: Path) -> None:
    html = client_for(tmp_path).get("/").text
    for match in re.finditer(r"<script([^>]*)>(.*?)</script>", html, re.S):
        attributes, body = match.groups()
        if 'type="application/json"' in attributes:
            continue
        assert "src=" in attributes and not body.strip(), "every executable script is a file"
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "no inline event handlers"


def test_security_headers_on_the_page(tmp_path: Path) -> None:
    response = client_for(tmp_path).get("/")
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_nothing_external_by_default(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    html = client.get("/").text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    sources = script_sources(html)
    assert sources[0].startswith(page.BUNDLED_DROPZONE)
    for source in sources:
        assert client.get(source).status_code == 200
    for href in re.findall(r'<link[^>]*href="([^"]+)"', html):
        assert client.get(href).status_code == 200


def test_bundled_dropzone_is_the_pinned_version(tmp_path: Path) -> None:
    response = client_for(tmp_path).get(page.BUNDLED_DROPZONE)
    assert response.status_code == 200, "run `make assets` to copy Dropzone from npm"
    pinned = json.loads((Path(__file__).parents[2] / "package.json").read_text())
    assert f"`{pinned['dependencies']['dropzone']}`" in response.text[:100]
    assert response.headers["content-type"].startswith(
        ("text/javascript", "application/javascript")
    )


@pytest.mark.parametrize(
    ("cdn", "version", "script"),
    [
        (
            "https://cdn.example.org/dropzone/",
            None,
            "https://cdn.example.org/dropzone/5.7.6/min/dropzone.min.js",
        ),
        (
            None,
            "6.0.0-beta.2",
            "https://cdnjs.cloudflare.com/ajax/libs/dropzone/6.0.0-beta.2/dropzone-min.js",
        ),
        (
            "https://cdn.example.org/dz",
            "5.9.3",
            "https://cdn.example.org/dz/5.9.3/min/dropzone.min.js",
        ),
    ],
)
def test_cdn_mode(tmp_path: Path, cdn: str | None, version: str | None, script: str) -> None:
    response = client_for(tmp_path, dz_cdn=cdn, dz_version=version).get("/")
    sources = script_sources(response.text)
    assert sources[0] == script
    assert all(s.startswith("/static/") for s in sources[1:])
    origin = "/".join(script.split("/")[:3])
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == f"'self' {origin}"
    # Dropzone's stylesheets come from the same CDN (the article's page loads both).
    assert directives["style-src"] == f"'self' {origin}"
    assert csp.count(origin) == 2, "the CDN is allowed for scripts and styles only"


def test_favicon(tmp_path: Path) -> None:
    response = client_for(tmp_path).get("/favicon.ico")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00", "an ICO file"
    assert len(response.content) < 4096


def test_custom_index(tmp_path: Path) -> None:
    custom = tmp_path / "index.html"
    custom.write_text("<!doctype html><title>ours</title><p>Custom drop page</p>", "utf-8")
    client = client_for(tmp_path, index=custom)
    response = client.get("/")
    assert response.status_code == 200
    assert "Custom drop page" in response.text
    assert "pfd-config" not in response.text
    assert "content-security-policy" in response.headers
    custom.write_text("<p>Edited</p>", "utf-8")
    assert "Edited" in client.get("/").text
    assert client.get("/static/pyfiledrop.js").status_code == 200


def test_custom_index_may_use_the_page_placeholders(tmp_path: Path) -> None:
    custom = tmp_path / "index.html"
    custom.write_text(
        '<script type="application/json" id="pfd-config">${config_json}</script>'
        '<script src="${dropzone_src}"></script><p>$$5 ${unknown} $(jquery)</p>',
        "utf-8",
    )
    html = client_for(tmp_path, index=custom, chunk_size=12345).get("/").text
    assert config_of(html)["dropzone"]["chunkSize"] == 12345
    assert script_sources(html) == [f"{page.BUNDLED_DROPZONE}?v={page.__version__}"]
    assert "<p>$5 ${unknown} $(jquery)</p>" in html


def test_static_files_do_not_escape_their_folder(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    assert client.get("/static/../page.py").status_code == 404
    assert client.get("/static/%2e%2e/page.py").status_code == 404


def test_real_server_sends_the_headers_on_every_response(server_factory: ServerFactory) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.url) as client:
        for path in ("/", "/favicon.ico", "/static/pyfiledrop.js", "/api/files", "/healthz"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert "script-src 'self';" in response.headers["content-security-policy"], path
        missing = client.get("/download/not-a-file")
        assert "frame-ancestors 'none'" in missing.headers["content-security-policy"]
        cross = client.get("/api/files", headers={"Origin": "https://elsewhere.example"})
        assert "access-control-allow-origin" not in cross.headers, "no CORS unless configured"


def test_real_server_flags_reach_the_page(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory(
        "-a", "--chunk-size", "2000000", "--disable-parallel-chunks", "--dz-version", "5.7.6"
    )
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/")
    config = config_of(response.text)
    assert config["allowDownloads"] is True
    assert config["dropzone"]["chunkSize"] == 2000000
    assert config["dropzone"]["parallelChunkUploads"] is False
    cdnjs = "https://cdnjs.cloudflare.com"
    assert script_sources(response.text)[0] == f"{page.DEFAULT_DZ_CDN}/5.7.6/min/dropzone.min.js"
    assert f"script-src 'self' {cdnjs};" in response.headers["content-security-policy"]

    custom = tmp_path / "ours.html"
    custom.write_text("<h1>Ours</h1>", "utf-8")
    other = server_factory("--index", str(custom))
    assert httpx.get(other.url + "/").text == "<h1>Ours</h1>"
