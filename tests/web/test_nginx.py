"""Behind real nginx, configured with exactly the block in docs/DEPLOY.md (read from the doc, so
it can't drift), on a port that is not 80/443: Chromium logs in and uploads through it."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.deploy_nginx import deploy_block, local_config
from bench.deploy_nginx import nginx_binary as shared_nginx_binary

from tests.conftest import Server, ServerFactory, free_port, random_file, sha256_of
from tests.web.test_browser import (  # noqa: F401 (fixtures)
    browser,
    choose_files,
    expect,
    open_page,
    wait_finished,
)

pytestmark = pytest.mark.browser

PASSWORD = "behind the proxy"


def nginx_binary() -> str:
    found = shared_nginx_binary()
    if not found:
        if os.environ.get("CI"):
            pytest.fail("nginx missing: `make proxy-deps` installs it")
        pytest.skip("nginx missing: run `make proxy-deps`")
    return found


def test_the_deploy_block_keeps_the_port_in_the_host() -> None:
    block = deploy_block()
    assert "proxy_set_header Host $http_host;" in block
    assert "proxy_request_buffering off;" in block


@pytest.fixture
def nginx_in_front(server_factory: ServerFactory, tmp_path: Path) -> Iterator[tuple[str, Server]]:
    binary = nginx_binary()
    node = server_factory("-a", "--password", PASSWORD, "--chunk-size", "262144")
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    config = local_config(deploy_block(), prefix, port, node.port)
    (prefix / "nginx.conf").write_text(config)
    process = subprocess.Popen(
        [binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "e.log")]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (prefix / "e.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "nginx did not come up"
            time.sleep(0.05)
        yield url, node
    finally:
        process.terminate()
        process.wait(10)


def test_chromium_logs_in_and_uploads_through_nginx(
    browser: Any,  # noqa: F811
    nginx_in_front: tuple[str, Server],
    tmp_path: Path,
) -> None:
    url, node = nginx_in_front
    # A client without Sec-Fetch-Site (an older browser) is judged by Origin against the host
    # nginx passes on: with the port, it is the same origin.
    same = httpx.put(
        f"{url}/put/plain.txt",
        content=b"plain",
        headers={"Origin": url, "Authorization": f"Bearer {PASSWORD}"},
    )
    assert same.status_code == 201, same.text

    context, page, _ = open_page(browser, url)
    try:
        expect(page).to_have_url(f"{url}/login?next=/")
        page.fill("#password", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{url}/")
        source = random_file(tmp_path / "through-nginx.bin", 1_500_000)
        choose_files(page, source)
        wait_finished(page, 1)
        expect(page.locator("#previews .file[data-state=done]")).to_have_count(1)
    finally:
        context.close()
    stored = {p.name: sha256_of(p) for p in node.stored_files()}
    assert stored["through-nginx.bin"] == sha256_of(source)
