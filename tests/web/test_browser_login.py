"""--password in a real browser: Chromium logs in with the form, then uploads from the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ServerFactory, random_file, sha256_of
from tests.web.test_browser import (  # noqa: F401 (fixtures)
    browser,
    choose_files,
    expect,
    open_page,
    wait_finished,
)

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery"


def test_login_form_then_upload_in_chromium(
    browser: Any,  # noqa: F811
    server_factory: ServerFactory,
    tmp_path: Path,
) -> None:
    server = server_factory("-a", "--password", PASSWORD, "--chunk-size", "65536")
    context, page, _ = open_page(browser, server.url)
    try:
        expect(page).to_have_url(f"{server.url}/login?next=/")
        page.fill("#password", "not it")
        page.click("button[type=submit]")
        # The form's own answer, not the cross-site JSON a privacy-stripped Origin used to get.
        expect(page.get_by_role("alert")).to_have_text("Wrong password.")
        assert "cross-site" not in page.content()

        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{server.url}/")
        source = random_file(tmp_path / "after-login.bin", 300_000)
        choose_files(page, source)
        wait_finished(page, 1)
        expect(page.locator("#previews .file[data-state=done]")).to_have_count(1)
    finally:
        context.close()
    assert [sha256_of(p) for p in server.stored_files()] == [sha256_of(source)]
