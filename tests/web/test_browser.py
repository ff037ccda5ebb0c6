"""The upload page in headless Chromium against a real server on 127.0.0.1.

Debian's Chromium (`make browser-deps`) is driven by Playwright; Playwright's own browser download
is not used. Waits are locator-based: the page's CSP forbids the string evaluation that
`wait_for_function` would need.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.config import Settings
from pyfiledrop.web.app import create_app
from tests.conftest import ServerFactory, random_file, sha256_of
from tests.harness import settings_in

playwright_api = pytest.importorskip("playwright.sync_api")
Browser = playwright_api.Browser
Page = playwright_api.Page
expect = playwright_api.expect

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
MIB = 1024 * 1024
FINISHED = "#previews .file[data-state=done], #previews .file[data-state=error]"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium missing: run `make browser-deps`")
    with playwright_api.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


def stored_files(storage: Path) -> list[Path]:
    return sorted(p for p in storage.rglob("*") if p.is_file())


# ---- a server in a thread, for tests that wrap the app to inject faults --------------------


@dataclass
class LiveServer:
    url: str
    settings: Settings


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    import uvicorn

    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(wrap: Callable[[ASGIApp], ASGIApp] | None = None, **overrides: Any) -> LiveServer:
        settings = settings_in(tmp_path, **{"host": "127.0.0.1", "fsync": False, **overrides})
        app: Any = create_app(settings)
        if wrap is not None:
            app = wrap(app)
        sock = free_socket()
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        started.append((server, thread))
        port = sock.getsockname()[1]
        return LiveServer(url=f"http://127.0.0.1:{port}", settings=settings)

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=10)


def never(scope: Scope, count: int) -> bool:
    return False


@dataclass
class Wiretap:
    """Counts requests; answers 500 to the ones `should_fail` or `fail_chunk` pick (after reading
    their whole body, as a failing server would)."""

    app: ASGIApp
    should_fail: Callable[[Scope, int], bool] = never
    fail_chunk: int | None = None  # every request for this chunk index fails
    seen: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = f"{scope['method']} {scope['path']}"
        self.seen[key] = count = self.seen.get(key, 0) + 1
        if self.should_fail(scope, count):
            await self.fail(key, receive, send)
        elif key == "POST /upload" and self.fail_chunk is not None:
            await self.fail_one_chunk(key, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def fail_one_chunk(self, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        # Small chunks only: the whole body is read to find its index, then replayed.
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        found = re.search(rb'name="dzchunkindex"\r\n\r\n(\d+)\r\n', body)
        if found and int(found.group(1)) == self.fail_chunk:
            await self.answer_500(key, send)
            return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def fail(self, key: str, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await self.answer_500(key, send)

    async def answer_500(self, key: str, send: Send) -> None:
        self.failed.append(key)
        body = b'{"error": "injected failure"}'
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def tapped(
    should_fail: Callable[[Scope, int], bool] = never, fail_chunk: int | None = None
) -> tuple[list[Wiretap], Any]:
    taps: list[Wiretap] = []

    def wrap(app: ASGIApp) -> ASGIApp:
        taps.append(Wiretap(app, should_fail, fail_chunk))
        return taps[-1]

    return taps, wrap


# ---- page helpers ------------------------------------------------------------------------


def open_page(browser: Any, url: str, **context_options: Any) -> tuple[Any, Page, list[str]]:
    context = browser.new_context(**context_options)
    page = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(url)
    return context, page, dialogs


def choose_files(page: Page, *paths: Path) -> None:
    page.set_input_files("input.dz-hidden-input", [str(p) for p in paths])


def wait_finished(page: Page, count: int, timeout_s: float = 60) -> None:
    expect(page.locator(FINISHED)).to_have_count(count, timeout=timeout_s * 1000)


def file_row(page: Page, name: str) -> Any:
    return page.locator("#previews .file").filter(has=page.locator("[data-dz-name]", has_text=name))


def api_files(page: Page) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = page.evaluate(
        "fetch('/api/files', {credentials: 'same-origin'}).then(r => r.json()).then(b => b.files)"
    )
    return files


# ---- the checks from the issue ---------------------------------------------------------


# Counts the page's chunk requests in flight. A request stops counting when its answer is in
# (readyState 4), which is before Dropzone's onload starts the next chunk.
CHUNK_METER = """
(() => {
  const meter = { active: 0, peak: 0, sent: 0 };
  window.__chunkMeter = meter;
  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.open = function (method, url) {
    this.__isChunk = method.toUpperCase() === "POST" && String(url) === "/upload";
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function () {
    if (this.__isChunk) {
      meter.active++; meter.sent++; meter.peak = Math.max(meter.peak, meter.active);
      let counted = true;
      const done = () => { if (counted) { counted = false; meter.active--; } };
      this.addEventListener("readystatechange", () => { if (this.readyState === 4) done(); });
      this.addEventListener("abort", done);
    }
    return send.apply(this, arguments);
  };
})();
"""


@pytest.mark.slow
def test_200_mb_with_parallel_chunks_completes_exactly(
    browser: Any, server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory("--allow-downloads")  # the defaults: forced chunks, 4 in flight
    size = 200 * 1000 * 1000
    source = random_file(tmp_path / "big-200MB.bin", size)
    expected = sha256_of(source)

    context = browser.new_context()
    context.add_init_script(CHUNK_METER)
    page = context.new_page()
    page.goto(server.url)
    began = time.monotonic()
    choose_files(page, source)
    wait_finished(page, 1, timeout_s=240)
    elapsed = time.monotonic() - began
    row = file_row(page, "big-200MB.bin")
    expect(row).to_have_attribute("data-state", "done")
    meter = page.evaluate("window.__chunkMeter")
    print(f"\n200 MB through the page: {elapsed:.1f} s, {size / 1e6 / elapsed:.0f} MB/s, {meter}")

    assert meter["sent"] == 96, "--chunk-size auto: 2 MiB chunks for 200 MB, each sent once"
    assert meter["peak"] == 4, "chunks went in parallel, never more than the bound"

    [stored] = stored_files(server.storage_dir)
    assert stored.name == "big-200MB.bin"
    assert sha256_of(stored) == expected
    expect(row.locator("[data-pfd-eta]")).to_contain_text(expected)

    [record] = api_files(page)
    assert (record["name"], record["size"], record["sha256"]) == ("big-200MB.bin", size, expected)
    entry = page.locator("#uploaded .uploaded-file")
    expect(entry).to_have_count(1)
    expect(entry.locator(".hash")).to_have_text(expected)
    expect(entry.locator("a.file-name")).to_have_attribute("href", f"/download/{record['id']}")

    page.reload()
    expect(page.locator("#uploaded .uploaded-file .hash")).to_have_text(expected)
    context.close()
    source.unlink()


@pytest.mark.slow
def test_auto_chunk_size_is_chosen_per_file(
    browser: Any, server_factory: ServerFactory, tmp_path: Path
) -> None:
    """The default `--chunk-size auto`: files uploaded together each get their own chunk size
    (1 MiB up to 128 MiB, 2 MiB up to 256 MiB), and both arrive exact."""
    server = server_factory("--allow-downloads")
    small = random_file(tmp_path / "small.bin", 3 * MIB + 5)
    big = tmp_path / "big.bin"  # sparse: 129 MiB of zeros cost no disk to make
    with big.open("wb") as handle:
        handle.truncate(129 * MIB)
        handle.seek(129 * MIB - 4)
        handle.write(b"last")
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url)
    expect(page.locator("#limits")).to_contain_text(
        "chunks of 1.00 MiB to 64.0 MiB (chosen per file)"
    )
    choose_files(page, small, big)
    wait_finished(page, 2, timeout_s=240)
    for name in ("small.bin", "big.bin"):
        expect(file_row(page, name)).to_have_attribute("data-state", "done")
    context.close()
    with sqlite3.connect(server.data_dir / "pyfiledrop.sqlite3") as db:
        sizes = dict(db.execute("SELECT name, chunk_size FROM uploads").fetchall())
    assert sizes == {"small.bin": MIB, "big.bin": 2 * MIB}
    stored = {p.name: sha256_of(p) for p in stored_files(server.storage_dir)}
    assert stored == {"small.bin": sha256_of(small), "big.bin": sha256_of(big)}
    big.unlink()


def test_hostile_file_name_is_shown_as_text(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    name = "<img src=x onerror=alert(1)>.txt"
    source = tmp_path / name
    source.write_bytes(b"just text\n")
    # CSP off in this browser: only the page's own text handling stands between name and DOM.
    context, page, dialogs = open_page(browser, server.url, bypass_csp=True)
    choose_files(page, source)
    wait_finished(page, 1)
    expect(file_row(page, name)).to_have_attribute("data-state", "done")
    expect(page.locator("#previews [data-dz-name]")).to_have_text(name)

    [record] = api_files(page)
    expect(page.locator("#uploaded .file-name")).to_have_text(record["name"])
    page.reload()
    expect(page.locator("#uploaded .file-name")).to_have_text(record["name"])
    page.wait_for_timeout(300)
    assert dialogs == []
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    context.close()


def test_another_browser_sees_none_of_these_files(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    mine, page, _ = open_page(browser, server.url)
    choose_files(page, random_file(tmp_path / "private.bin", 5000))
    wait_finished(page, 1)
    expect(page.locator("#uploaded .file-name")).to_have_text("private.bin")
    theirs, other, _ = open_page(browser, server.url)  # a fresh cookie jar: another owner
    expect(other.locator("#uploaded-status")).to_have_text(
        "Nothing uploaded from this browser yet."
    )
    expect(other.locator("#uploaded .uploaded-file")).to_have_count(0)
    assert api_files(other) == []
    mine.close()
    theirs.close()


def test_chunk_failing_once_is_retried(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    taps, wrap = tapped(
        lambda scope, n: scope["method"] == "POST" and scope["path"] == "/upload" and n == 3
    )
    server = live_server(wrap=wrap, chunk_size=256 * 1024)
    source = random_file(tmp_path / "retried.bin", 6 * 256 * 1024 + 1234)
    context, page, _ = open_page(browser, server.url)
    choose_files(page, source)
    wait_finished(page, 1)
    expect(file_row(page, "retried.bin")).to_have_attribute("data-state", "done")

    [tap] = taps
    assert tap.failed == ["POST /upload"]
    assert tap.seen["POST /upload"] == 7 + 1  # seven chunks, one of them twice
    [stored] = stored_files(server.settings.storage)
    assert sha256_of(stored) == sha256_of(source)
    context.close()


def test_chunk_failing_for_good_fails_the_file_and_stops_its_upload(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    taps, wrap = tapped(fail_chunk=2)
    # A failed chunk is retried with growing pauses (0.5 s, 1 s, 2 s...) for `retry_for`.
    server = live_server(wrap=wrap, chunk_size=256 * 1024, retry_for=2)
    source = random_file(tmp_path / "doomed.bin", 200 * 256 * 1024)
    context, page, _ = open_page(browser, server.url)
    # Every text the row's state takes, in order (sampled each 5 ms), to see what follows a retry.
    page.evaluate("""() => {
        window.seenStates = [];
        setInterval(() => {
            const state = document.querySelector("#previews .file [data-pfd-state]");
            const text = state ? state.textContent.trim() : "";
            if (text && window.seenStates[window.seenStates.length - 1] !== text)
                window.seenStates.push(text);
        }, 5);
    }""")
    choose_files(page, source)
    expect(file_row(page, "doomed.bin")).to_have_attribute("data-state", "retrying")
    expect(file_row(page, "doomed.bin").locator("[data-pfd-state]")).to_contain_text(
        "The server had a problem (error 500). Trying again in"
    )
    wait_finished(page, 1)
    row = file_row(page, "doomed.bin")
    expect(row).to_have_attribute("data-state", "error")
    expect(row.locator("[data-dz-errormessage]")).to_contain_text("injected failure")
    expect(row.locator("[data-dz-errormessage]")).to_contain_text("gave up after")
    seen = page.evaluate("window.seenStates")
    first_retry = next(i for i, text in enumerate(seen) if "Trying again in" in text)
    # Other chunks went through while chunk 2 waited: they must not hide the retry's notice.
    assert "Uploading" not in seen[first_retry:], seen
    [tap] = taps
    assert tap.failed.count("POST /upload") in (3, 4), "sent once, retried for about 2 s"
    sent = tap.seen["POST /upload"]
    page.wait_for_timeout(1000)
    assert tap.seen["POST /upload"] == sent, "nothing more is sent for a failed file"
    # The other chunks go on while one is retried; each is sent once (chunk 2 up to 4 times).
    assert sent <= 200 + 3
    assert stored_files(server.settings.storage) == []
    context.close()


def test_adding_the_same_file_after_a_reload_sends_only_the_rest(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    taps, wrap = tapped()
    server = live_server(wrap=wrap, chunk_size=256 * 1024)
    [tap] = taps
    chunks = 40
    source = random_file(tmp_path / "resumed.bin", chunks * 256 * 1024 - 1000)
    context, page, _ = open_page(browser, server.url)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    throttle = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": 2 * MIB})
    choose_files(page, source)
    expect(page.locator("#previews .file[data-state=uploading]")).to_have_count(1)
    deadline = time.monotonic() + 30
    while tap.seen.get("POST /upload", 0) < 12:
        assert time.monotonic() < deadline
        page.wait_for_timeout(100)
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": -1})
    page.reload()  # in-flight chunks are cut off; the server counts none of them

    saved = page.evaluate("JSON.parse(localStorage.getItem('pyfiledrop.unfinished'))")
    [entry] = saved.values()
    # A chunk whose last bytes arrived just before the reload may still be being recorded.
    state: dict[str, Any] = {}
    for _ in range(20):
        page.wait_for_timeout(300)
        latest = page.evaluate("u => fetch('/upload/' + u).then(r => r.json())", entry["uuid"])
        if latest == state:
            break
        state = latest
    assert state["state"] == "receiving"
    have = len(state["received"])
    assert 0 < have < chunks
    before = tap.seen["POST /upload"]

    choose_files(page, source)
    wait_finished(page, 1)
    row = file_row(page, "resumed.bin")
    expect(row).to_have_attribute("data-state", "done")
    assert tap.seen["POST /upload"] - before == chunks - have, "only the missing chunks"
    [stored] = stored_files(server.settings.storage)
    assert sha256_of(stored) == sha256_of(source)
    assert page.evaluate("localStorage.getItem('pyfiledrop.unfinished')") == "{}"
    context.close()


def test_failed_finish_is_an_error_not_a_success(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    _, wrap = tapped(lambda scope, n: scope["path"].endswith("/finish"))
    server = live_server(wrap=wrap, chunk_size=256 * 1024, retry_for=1)
    source = random_file(tmp_path / "unfinished.bin", 600 * 1024)
    context, page, _ = open_page(browser, server.url)
    choose_files(page, source)
    wait_finished(page, 1)
    row = file_row(page, "unfinished.bin")
    expect(row).to_have_attribute("data-state", "error")
    expect(row.locator("[data-dz-errormessage]")).to_have_text("injected failure")
    expect(page.locator("#batch-count")).to_have_text("0 of 1 done, 1 failed")
    context.close()


def test_server_refusal_reason_is_shown(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(max_size=1, force_chunking=True)
    source = random_file(tmp_path / "too-big.bin", 2 * MIB)
    context, page, _ = open_page(browser, server.url)
    # The browser refuses it first (same limit); lift that to see the server's own refusal.
    page.evaluate("Dropzone.instances[0].options.maxFilesize = 1000")
    choose_files(page, source)
    wait_finished(page, 1)
    row = file_row(page, "too-big.bin")
    expect(row).to_have_attribute("data-state", "error")
    message = row.locator("[data-dz-errormessage]")
    expect(message).not_to_be_empty()
    assert "<" not in message.inner_text()
    assert stored_files(server.settings.storage) == []
    context.close()


def test_page_works_with_no_internet(
    browser: Any, server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()  # the defaults: bundled Dropzone, downloads off
    outside: list[str] = []
    problems: list[str] = []
    context = browser.new_context()

    def only_local(route: Any) -> None:
        if route.request.url.startswith(server.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_local)
    page = context.new_page()
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(server.url)
    expect(page.locator("#loader-error")).to_be_hidden()
    source = random_file(tmp_path / "offline.bin", 3 * MIB)
    choose_files(page, source)
    wait_finished(page, 1)
    expect(file_row(page, "offline.bin")).to_have_attribute("data-state", "done")
    expect(page.locator("#uploaded .file-name")).to_have_text("offline.bin")
    expect(page.locator("#uploaded a")).to_have_count(0)  # downloads are off
    assert outside == []
    assert problems == [], "no script errors, no CSP violations"
    assert [p.name for p in server.stored_files()] == ["offline.bin"]
    context.close()


def test_unreachable_cdn_is_reported_on_the_page(
    browser: Any, live_server: Callable[..., LiveServer]
) -> None:
    with free_socket() as closed:
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    server = live_server(dz_cdn=dead, dz_version="6.3.5")
    context, page, _ = open_page(browser, server.url)
    expect(page.locator("#loader-error")).to_be_visible()
    context.close()


def test_keyboard_only_and_clear(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = random_file(tmp_path / "by-keyboard.bin", 100 * 1024)
    context, page, _ = open_page(browser, server.url)
    page.on("filechooser", lambda chooser: chooser.set_files(str(source)))
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "dropper":
            break
    assert page.evaluate("document.activeElement.id") == "dropper"
    page.keyboard.press("Enter")
    wait_finished(page, 1)
    expect(page.locator("#uploaded .file-name")).to_have_text("by-keyboard.bin")

    page.focus("#clear")
    page.keyboard.press("Enter")
    expect(page.locator("#uploaded .uploaded-file")).to_have_count(0)
    expect(page.locator("#uploaded-hidden")).to_be_visible()
    assert "this browser only" in (page.get_attribute("#clear", "title") or "")
    page.reload()
    expect(page.locator("#uploaded-hidden")).to_be_visible()
    expect(page.locator("#uploaded .uploaded-file")).to_have_count(0)
    assert len(api_files(page)) == 1, "Clear hides the list, the server keeps the file"
    page.click("#show-hidden")
    expect(page.locator("#uploaded .file-name")).to_have_text("by-keyboard.bin")
    context.close()


def test_phone_width_has_no_sideways_scrolling(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = random_file(tmp_path / ("a-rather-long-file-name-" * 4 + ".bin"), 1000)
    context, page, _ = open_page(browser, server.url, viewport={"width": 360, "height": 740})
    choose_files(page, source)
    wait_finished(page, 1)
    expect(page.locator("#uploaded .uploaded-file")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    context.close()


def test_progress_speed_and_time_left_mid_upload(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """Uploads under a throttled network and checks what the page shows while they run.

    With PYFILEDROP_SCREENSHOT=docs/screenshot-upload.png it also saves the README's screenshot.
    """
    server = live_server(chunk_size=1 * MIB)
    context, page, _ = open_page(browser, server.url, viewport={"width": 820, "height": 900})
    choose_files(page, random_file(tmp_path / "notes.txt", 14 * 1024))
    wait_finished(page, 1)
    expect(page.locator("#uploaded .uploaded-file")).to_have_count(1)

    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 6 * MIB},
    )
    choose_files(
        page,
        random_file(tmp_path / "holiday-video.mp4", 48 * MIB),
        random_file(tmp_path / "disk-image.iso", 36 * MIB),
        random_file(tmp_path / "dataset.tar.zst", 24 * MIB),
    )
    uploading = page.locator("#previews .file[data-state=uploading]")
    expect(uploading).to_have_count(2)
    expect(uploading.first.locator("[data-pfd-speed]")).to_contain_text("/s", timeout=15000)
    expect(uploading.first.locator("[data-pfd-eta]")).to_contain_text("left")
    expect(page.locator("#batch-count")).to_have_text("0 of 3 done")
    expect(page.locator("#batch-eta")).to_contain_text("left")
    page.wait_for_timeout(2500)
    value = float(uploading.first.locator("progress").get_attribute("value") or 0)
    assert 0 < value < 100
    destination = os.environ.get("PYFILEDROP_SCREENSHOT")
    if destination:
        page.screenshot(path=destination, full_page=True)
    context.close()
