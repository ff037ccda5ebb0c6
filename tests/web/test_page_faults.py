"""The page under faults, in headless Chromium: a server that goes away mid-upload, then returns."""
# ruff: noqa: F811 (the fixtures imported from the browser harness are parameters here)

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerFactory, random_file, sha256_of
from tests.web.test_browser import (  # noqa: F401 (fixtures)
    MIB,
    ASGIApp,
    LiveServer,
    Receive,
    Scope,
    Send,
    browser,
    choose_files,
    expect,
    file_row,
    live_server,
    open_page,
    stored_files,
    wait_finished,
)

pytestmark = pytest.mark.browser

CHUNK = 256 * 1024


def progress_of(row: Any) -> float:
    value: float = row.locator("progress").evaluate("bar => bar.value")
    return value


def test_upload_rides_out_a_server_restart_with_no_click(
    browser: Any, server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory("-a", "--chunk-size", str(CHUNK), "--no-fsync")
    source = random_file(tmp_path / "through-a-restart.bin", 48 * CHUNK + 4321)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url)
    # Slow the upload down so the restart lands in its middle.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 2 * MIB},
    )
    choose_files(page, source)
    row = file_row(page, source.name)
    deadline = time.monotonic() + 60
    while progress_of(row) < 20:
        assert time.monotonic() < deadline, "the upload did not get going"
        page.wait_for_timeout(100)

    server.kill()  # as in a crash: in-flight chunks are cut off
    expect(row).to_have_attribute("data-state", "retrying", timeout=20_000)
    expect(row.locator("[data-pfd-state]")).to_contain_text("Trying again in")
    folder = os.environ.get("PYFILEDROP_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / "screenshot-retrying.png"), full_page=True)
    server.start()

    wait_finished(page, 1, timeout_s=120)
    expect(row).to_have_attribute("data-state", "done")
    [stored] = server.stored_files()
    assert stored.name == source.name
    assert sha256_of(stored) == sha256_of(source)
    context.close()


def answering(status: int, requests: set[int]) -> tuple[list[int], Callable[[ASGIApp], ASGIApp]]:
    """A wrapper that answers `status` to the chunk requests numbered in `requests` (from 1)."""
    counted: list[int] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        async def tapped(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (scope["method"], scope["path"]) != ("POST", "/upload"):
                await app(scope, receive, send)
                return
            counted.append(len(counted) + 1)
            if counted[-1] not in requests:
                await app(scope, receive, send)
                return
            while (await receive()).get("more_body"):
                pass
            body = b'{"error": "this chunk is being written by another request"}'
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return tapped

    return counted, wrap


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (423, "The server is still busy with part of this file"),
        (503, "The server is not available (it may be restarting)"),
    ],
)
def test_busy_or_unavailable_chunk_is_retried_with_plain_words(
    browser: Any,
    live_server: Callable[..., LiveServer],
    tmp_path: Path,
    status: int,
    words: str,
) -> None:
    counted, wrap = answering(status, {2, 3})
    server = live_server(wrap=wrap, chunk_size=CHUNK, parallel_chunks=False)
    source = random_file(tmp_path / "busy.bin", 5 * CHUNK + 10)
    context, page, _ = open_page(browser, server.url)
    choose_files(page, source)
    row = file_row(page, source.name)
    expect(row.locator("[data-pfd-state]")).to_contain_text(words)
    wait_finished(page, 1)
    expect(row).to_have_attribute("data-state", "done")
    assert len(counted) == 6 + 2, "six chunks, one of them refused twice"
    [stored] = stored_files(server.settings.storage)
    assert sha256_of(stored) == sha256_of(source)
    context.close()


def test_upload_rides_out_a_network_cut_with_no_click(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(chunk_size=CHUNK)
    source = random_file(tmp_path / "through-a-cut.bin", 32 * CHUNK + 99)
    context, page, _ = open_page(browser, server.url)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"latency": 0, "downloadThroughput": -1, "uploadThroughput": 2 * MIB}
    cdp.send("Network.emulateNetworkConditions", {"offline": False, **conditions})
    choose_files(page, source)
    row = file_row(page, source.name)
    deadline = time.monotonic() + 60
    while progress_of(row) < 20:
        assert time.monotonic() < deadline, "the upload did not get going"
        page.wait_for_timeout(100)

    cdp.send("Network.emulateNetworkConditions", {"offline": True, **conditions})
    expect(row).to_have_attribute("data-state", "retrying", timeout=20_000)
    expect(row.locator("[data-pfd-state]")).to_contain_text("cannot be reached", timeout=20_000)
    cdp.send("Network.emulateNetworkConditions", {"offline": False, **conditions})

    wait_finished(page, 1, timeout_s=120)
    expect(row).to_have_attribute("data-state", "done")
    [stored] = stored_files(server.settings.storage)
    assert sha256_of(stored) == sha256_of(source)
    context.close()
