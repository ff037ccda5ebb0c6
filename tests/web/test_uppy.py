"""Uppy (@uppy/core + @uppy/tus from npm, pinned) in Chromium, on a page of another origin (a
second 127.0.0.1 port) uploading to pyfiledrop's tus endpoint, as the README's Uppy section says."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerFactory, sha256_of
from tests.web.test_browser import browser, open_page  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "uppy"
ESBUILD = ROOT / "node_modules" / ".bin" / "esbuild"
SIZE = 700_000


def expected_sha256() -> str:
    return hashlib.sha256(bytes((i * 7 + 3) % 251 for i in range(SIZE))).hexdigest()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def build_uppy(target: Path) -> None:
    """Uppy's ES modules (and their CommonJS imports) bundled into one script for the page."""
    if not ESBUILD.exists():
        if os.environ.get("CI"):
            pytest.fail("node_modules missing: `make assets` runs npm ci")
        pytest.skip("node_modules missing: run `npm ci`")
    entry = ROOT / f".test-uppy-entry-{os.getpid()}.mjs"  # in the project: node_modules resolves
    shutil.copy(HERE / "entry.mjs", entry)
    try:
        subprocess.run(
            [str(ESBUILD), str(entry), "--bundle", "--format=iife", "--log-level=warning",
             f"--outfile={target}"],
            check=True, timeout=120,
        )  # fmt: skip
    finally:
        entry.unlink()


@pytest.fixture(scope="module")
def uppy_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page and its bundle, served from their own 127.0.0.1 port (another origin)."""
    folder = tmp_path_factory.mktemp("uppy-page")
    shutil.copy(HERE / "index.html", folder / "index.html")
    build_uppy(folder / "uppy.js")
    handler = functools.partial(QuietHandler, directory=str(folder))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(10)


def run_uppy(chromium: Any, page_url: str, server_url: str, credentials: bool) -> dict[str, Any]:
    context, page, _ = open_page(chromium, server_url + "/healthz")  # now it holds our cookie
    try:
        page.goto(page_url + "/index.html")
        result: dict[str, Any] = page.evaluate(
            "([endpoint, size, creds]) => window.uploadWithUppy(endpoint, size, creds)",
            [server_url + "/files/", SIZE, credentials],
        )
        return result
    finally:
        context.close()


def test_uppy_from_a_listed_origin_uploads_with_credentials(
    browser: Any,  # noqa: F811
    server_factory: Callable[..., Any],
    uppy_page: str,
) -> None:
    server = server_factory("-a", "--cors-origin", uppy_page)
    result = run_uppy(browser, uppy_page, server.url, credentials=True)
    assert result["successful"] == 1, result
    assert [sha256_of(p) for p in server.stored_files()] == [expected_sha256()]


def test_uppy_under_any_origin_works_only_without_credentials(
    browser: Any,  # noqa: F811
    server_factory: ServerFactory,
    uppy_page: str,
) -> None:
    server = server_factory("-a", "--cors-origin", "*")
    refused = run_uppy(browser, uppy_page, server.url, credentials=True)
    assert refused["successful"] == 0 and refused["failed"], refused
    assert server.stored_files() == []
    anonymous = run_uppy(browser, uppy_page, server.url, credentials=False)
    assert anonymous["successful"] == 1, anonymous
    assert [sha256_of(p) for p in server.stored_files()] == [expected_sha256()]
