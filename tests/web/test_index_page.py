"""--index pages work as their authors wrote them: the page's own inline code runs (its CSP allows
exactly its inline scripts, styles and handlers by hash) and its CDN stylesheets load."""

from __future__ import annotations

import functools
import math
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.config import Settings
from pyfiledrop.web import page as page_module
from tests.conftest import ServerFactory, random_file, sha256_of
from tests.web.test_browser import browser, expect, open_page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
# The article's page (the project's seed, first post), byte for byte: a Python f-string.
ARTICLE_PAGE = Path(__file__).resolve().parent / "article_index.html"
DROPZONE_5 = ROOT / "node_modules" / "dropzone5" / "dist" / "min"
ARTICLE_CHUNK_SIZE = 1_000_000  # the article's defaults, which its page carries


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_cdn(tmp_path: Path) -> Iterator[str]:
    """A folder laid out like cdnjs (`<cdn>/<version>/min/...`) on its own 127.0.0.1 port."""
    if not DROPZONE_5.is_dir():
        if os.environ.get("CI"):
            pytest.fail("node_modules missing: `make assets` runs npm ci")
        pytest.skip("node_modules missing: run `npm ci`")
    root = tmp_path / "cdn"
    shutil.copytree(DROPZONE_5, root / "dropzone" / "5.7.6" / "min")
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/dropzone"
    httpd.shutdown()
    thread.join(10)


def article_page_for(cdn: str) -> str:
    """The page as the article's server sends it: its f-string with the article's variables."""
    variables = {
        "allow_downloads": False,
        "dropzone_cdn": cdn,
        "dropzone_version": "5.7.6",
        "dropzone_timeout": "120000",
        "dropzone_max_file_size": "100000",
        "dropzone_chunk_size": str(ARTICLE_CHUNK_SIZE),
        "dropzone_parallel_chunks": "true",
        "dropzone_force_chunking": "true",
    }
    rendered: str = eval("f'''" + ARTICLE_PAGE.read_text() + "'''", {}, variables)
    return rendered


def test_inline_code_is_found_and_hashed(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<script>a()</script><script src=/x.js></script><style>\r\np{}</style>"
        '<button onclick="go()" style="color: red">x</button>'
        '<script type="application/json">${config_json}</script>'
    )
    found = page_module.inline_code(page_module.render_custom_index(page, Settings()))
    # Hashes as a browser computes them (`echo -n 'a()' | sha256sum | xxd -r -p | base64`).
    assert found.scripts[0] == "'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4='"
    assert len(found.scripts) == 2  # a()'s and the JSON block's; not the external one
    assert len(found.styles) == 1 and len(found.script_attributes) == 1
    assert len(found.style_attributes) == 1


def test_the_article_page_uploads_in_chunks_with_its_own_options(
    browser: Any,  # noqa: F811
    server_factory: ServerFactory,
    local_cdn: str,
    tmp_path: Path,
) -> None:
    page_file = tmp_path / "article.html"
    page_file.write_text(article_page_for(local_cdn))
    server = server_factory(
        "--index", str(page_file), "--dz-cdn", local_cdn, "--dz-version", "5.7.6"
    )
    context, page, _ = open_page(browser, "about:blank")
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    try:
        page.goto(server.url)
        # Its CDN stylesheet applies (Dropzone's own look), and its inline options script ran.
        expect(page.locator("#dropper")).to_have_css("border-style", "solid")  # else none
        expect(page.locator("#content")).to_have_css("width", "800px")  # a style attribute
        source = random_file(tmp_path / "article-sized.bin", 2_500_000)
        page.set_input_files("input.dz-hidden-input", str(source))
        expect(page.locator("#uploaded")).to_contain_text(source.name, timeout=60_000)
    finally:
        context.close()
    assert not [line for line in console if "Content Security Policy" in line], console
    assert [sha256_of(p) for p in server.stored_files()] == [sha256_of(source)]
    # Chunks of the page's own size: Dropzone's defaults (no chunking) would have sent one body.
    assert server.health()["chunks_counted"] == math.ceil(2_500_000 / ARTICLE_CHUNK_SIZE)


def test_uppy_on_an_index_page_uploads_same_origin(
    browser: Any,  # noqa: F811
    server_factory: ServerFactory,
    local_cdn: str,
    tmp_path: Path,
) -> None:
    """The README's same-origin Uppy: the page is pyfiledrop's own (--index), Uppy's script from
    the --dz-cdn origin, its inline code allowed by hash; no CORS setting at all."""
    from tests.web.test_uppy import HERE, SIZE, build_uppy, expected_sha256

    build_uppy(tmp_path / "cdn" / "dropzone" / "uppy.js")
    page_file = tmp_path / "uppy.html"
    page_file.write_text(
        (HERE / "index.html").read_text().replace('src="uppy.js"', f'src="{local_cdn}/uppy.js"')
    )
    server = server_factory("--index", str(page_file), "--dz-cdn", local_cdn)
    context, page, _ = open_page(browser, server.url)
    try:
        result = page.evaluate("([size]) => window.uploadWithUppy('/files/', size, false)", [SIZE])
        assert result["successful"] == 1, result
        mine = page.evaluate("fetch('/api/files').then(r => r.json()).then(b => b.files)")
    finally:
        context.close()
    assert [f["sha256"] for f in mine] == [expected_sha256()]  # it joined the visitor's list
    assert [sha256_of(p) for p in server.stored_files()] == [expected_sha256()]
