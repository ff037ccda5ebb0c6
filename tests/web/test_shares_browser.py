"""Sharing in headless Chromium: the link, Copy, the QR code, and the recipient page on a phone."""
# ruff: noqa: F811 (the fixtures imported from the browser harness are parameters here)

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.test_browser import (  # noqa: F401 (fixtures)
    LiveServer,
    browser,
    choose_files,
    expect,
    file_row,
    live_server,
    open_page,
    wait_finished,
)

zxingcpp = pytest.importorskip("zxingcpp")
Image = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.browser

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def screenshot(page: Any, name: str) -> None:
    """With PYFILEDROP_SCREENSHOTS=docs, saves the README's pictures of the new page states."""
    folder = os.environ.get("PYFILEDROP_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"screenshot-{name}.png"), full_page=True)


def decode_qr(png: bytes) -> str:
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert results, "no QR code found in the picture"
    text: str = results[0].text
    return text


def upload_one(page: Any, path: Path) -> Any:
    choose_files(page, path)
    wait_finished(page, 1)
    row = file_row(page, path.name)
    expect(row).to_have_attribute("data-state", "done")
    return row


def test_link_copy_and_qr_code_after_an_upload(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = tmp_path / "holiday photos.zip"
    source.write_bytes(b"PK" + bytes(range(256)) * 40)
    context, page, _ = open_page(
        browser, server.url, permissions=["clipboard-read", "clipboard-write"]
    )
    row = upload_one(page, source)
    [record] = page.evaluate("fetch('/api/files').then(r => r.json()).then(b => b.files)")
    link = f"{server.url}/f/{record['id']}"
    expect(row.locator(".share-link")).to_have_value(link)

    row.locator("button.copy").click()
    expect(row.locator("button.copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == link

    assert decode_qr(row.locator("canvas.qr").screenshot()) == link
    expect(row.locator(".stored-as")).to_have_count(0)  # stored under the name it was sent
    screenshot(page, "link")
    context.close()


def test_link_uses_public_url_when_set(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(public_url="https://files.example.org/in")
    source = tmp_path / "a.txt"
    source.write_bytes(b"a" * 1000)
    context, page, _ = open_page(browser, server.url)
    row = upload_one(page, source)
    value = row.locator(".share-link").input_value()
    assert value.startswith("https://files.example.org/in/f/")
    assert decode_qr(row.locator("canvas.qr").screenshot()) == value
    context.close()


def test_page_says_plainly_when_downloads_are_off(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server(allow_downloads=False)
    source = tmp_path / "a.txt"
    source.write_bytes(b"a" * 1000)
    context, page, _ = open_page(browser, server.url)
    expect(page.locator("#limits")).to_contain_text("Downloads are off on this server")
    expect(page.locator("#group-share")).to_be_hidden()
    expect(page.locator("#download-password")).to_be_hidden()
    row = upload_one(page, source)
    expect(row.locator(".downloads-off")).to_contain_text("Downloads are off on this server")
    expect(row.locator(".share-link")).to_have_count(0)
    expect(row.locator("canvas.qr")).to_have_count(0)
    context.close()


def test_row_shows_the_stored_name_when_it_differs(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """The server stores a sanitized name (a second file of the same name is made unique on disk
    only, and the uploader keeps seeing its own name: issue 14)."""
    server = live_server()
    source = tmp_path / "re:port?.txt"
    source.write_bytes(b"first" * 300)
    context, page, _ = open_page(browser, server.url)
    upload_one(page, source)
    expect(page.locator("#previews .stored-name")).to_have_text("re_port_.txt")
    context.close()


def test_options_come_before_the_drop_area(
    browser: Any, live_server: Callable[..., LiveServer]
) -> None:
    server = live_server()
    context, page, _ = open_page(browser, server.url)
    options_top = page.locator("#upload-options").bounding_box()["y"]
    drop_top = page.locator("#dropper").bounding_box()["y"]
    assert options_top < drop_top
    context.close()


def test_recipient_page_on_a_phone_downloads_the_file(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = tmp_path / ("a-rather-long-file-name-that-would-not-fit-on-a-phone" * 2 + ".bin")
    data = bytes(range(256)) * 4000
    source.write_bytes(data)
    context, page, _ = open_page(browser, server.url)
    upload_one(page, source)
    link = page.locator(".share-link").input_value()
    context.close()

    # The recipient: another browser, a phone, no cookies of the uploader's.
    context = browser.new_context(accept_downloads=True, **PHONE)
    page = context.new_page()
    page.goto(link)
    expect(page.locator("h1")).to_have_text(source.name)
    expect(page.locator(".facts")).to_contain_text(hashlib.sha256(data).hexdigest())
    expect(page.locator(".facts")).to_contain_text("no limit")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "recipient-phone")
    with page.expect_download() as info:
        page.locator("#download").click()
    saved = tmp_path / "saved.bin"
    info.value.save_as(saved)
    assert saved.read_bytes() == data
    context.close()


def test_recipient_page_of_a_used_up_link_is_the_410_page(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = tmp_path / "once.txt"
    source.write_bytes(b"x" * 5000)
    context, page, _ = open_page(browser, server.url)
    page.select_option("#max-downloads", "1")
    upload_one(page, source)
    link = page.locator(".share-link").input_value()
    context.close()
    context = browser.new_context(accept_downloads=True, **PHONE)
    page = context.new_page()
    page.goto(link)
    expect(page.locator(".facts")).to_contain_text("1 of 1")
    with page.expect_download() as info:
        page.locator("#download").click()
    info.value.save_as(tmp_path / "got.txt")
    response = page.goto(link)
    assert response is not None and response.status == 410
    expect(page.locator("h1")).to_have_text("Link no longer available")
    context.close()


def test_one_link_for_a_drop_downloads_all_as_a_zip(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    sources = []
    for number in range(3):
        path = tmp_path / f"part-{number}.bin"
        path.write_bytes(bytes([number]) * (300_000 + number))
        sources.append(path)
    context, page, _ = open_page(browser, server.url)
    page.check("#group-share")
    choose_files(page, *sources)
    wait_finished(page, 3)
    block = page.locator("#share-result .drop-share")
    expect(block).to_contain_text("One link for these 3 files")
    field = block.locator(".share-link")
    expect(field).to_have_value(re.compile(re.escape(server.url) + r"/s/[A-Za-z0-9_-]{22}$"))
    link = field.input_value()
    assert decode_qr(block.locator("canvas.qr").screenshot()) == link
    expect(page.locator("#previews .share-link")).to_have_count(0)  # no link per file
    context.close()

    context = browser.new_context(accept_downloads=True, **PHONE)
    page = context.new_page()
    page.goto(link)
    expect(page.locator(".share-file")).to_have_count(3)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "share-phone")
    with page.expect_download() as info:
        page.locator("#download-all").click()
    saved = tmp_path / "all.zip"
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        got = {i.filename: hashlib.sha256(archive.read(i)).hexdigest() for i in archive.infolist()}
    assert got == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sources}
    context.close()


def test_download_password_form_in_the_browser(
    browser: Any, live_server: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = live_server()
    source = tmp_path / "secret-plans.txt"
    source.write_bytes(b"plans\n" * 5000)
    context, page, _ = open_page(browser, server.url)
    page.fill("#download-password", "correct horse")
    row = upload_one(page, source)
    expect(row.locator(".file-share")).to_contain_text("Protected by the download password")
    link = row.locator(".share-link").input_value()
    context.close()

    context = browser.new_context(accept_downloads=True, **PHONE)
    page = context.new_page()
    page.goto(link)
    expect(page.locator("h1")).to_have_text("This link is protected")
    expect(page.locator("body")).not_to_contain_text("secret-plans")
    page.fill("#password", "wrong horse")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_have_text("Wrong password.")
    screenshot(page, "password-phone")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("secret-plans.txt")
    with page.expect_download() as info:
        page.locator("#download").click()
    saved = tmp_path / "got.txt"
    info.value.save_as(saved)
    assert saved.read_bytes() == source.read_bytes()
    context.close()
