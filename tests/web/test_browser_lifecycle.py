"""The page's lifecycle controls in headless Chromium: a one-time, short-lived upload; delete."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import random_file
from tests.web.test_browser import (  # noqa: F401 (fixtures)
    LiveServer,
    api_files,
    browser,
    choose_files,
    expect,
    live_server,
    open_page,
    wait_finished,
)

pytestmark = pytest.mark.browser


def test_options_travel_with_the_upload_and_delete_needs_two_clicks(
    browser: Any,  # noqa: F811
    live_server: Callable[..., LiveServer],  # noqa: F811
    tmp_path: Path,
) -> None:
    server = live_server(expire_after=7 * 86400)
    context, page, dialogs = open_page(browser, server.url)
    life = page.locator("#expires-in")
    # Choices longer than the server's own limit are not offered.
    assert life.locator("option").all_text_contents() == [
        "as long as the server keeps them (7 days)",
        "1 hour",
        "1 day",
    ]
    life.select_option("3600")
    page.locator("#max-downloads").select_option("1")
    choose_files(page, random_file(tmp_path / "once.bin", 3 * 1024 * 1024 + 1))
    wait_finished(page, 1)
    [record] = api_files(page)
    assert record["max_downloads"] == 1 and record["expires"] is not None
    entry = page.locator("#uploaded .uploaded-file")
    expect(entry.locator(".file-limits")).to_contain_text("Downloaded 0 of 1")

    delete = entry.locator(".file-delete")
    delete.click()
    expect(delete).to_have_text("Really delete?")
    assert (server.settings.storage / "once.bin").exists()
    delete.click()
    expect(page.locator("#uploaded .uploaded-file")).to_have_count(0)
    assert not (server.settings.storage / "once.bin").exists()
    assert httpx.get(f"{server.url}/download/{record['id']}").status_code == 410
    assert dialogs == []
    context.close()
