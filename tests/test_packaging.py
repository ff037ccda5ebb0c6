"""The ways pyfiledrop is shipped, each started as a user would and given a real upload.

`tools/dist.py` (what `make dist` runs) builds the sdist, the wheel (from the sdist), the shiv
zipapp and the PyInstaller executable once per session into a temporary folder; the wheel goes
into a clean venv. Each one serves the page protocol (Dropzone chunks) and returns the exact
bytes; the wheel's page loads its bundled Dropzone in Chromium. Building takes a minute or two.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server, free_port, random_file, sha256_of
from tests.dz import upload

ROOT = Path(__file__).resolve().parent.parent
DROPZONE = "pyfiledrop/web/static/vendor/dropzone/dropzone-min.js"
CHROMIUM = Path("/usr/bin/chromium")
BUILD_TIMEOUT_SECONDS = 900
MIB = 1024 * 1024

# The first test that needs `dist` builds it (about a minute; several on a loaded machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + 300)]


@dataclass
class Shipped(Server):
    """A server started from a shipped form: `prefix` replaces `python -m pyfiledrop`."""

    prefix: list[str] = field(default_factory=list)

    def command(self) -> list[str]:
        return [*self.prefix, *super().command()[3:]]


def fresh_checkout(dest: Path) -> Path:
    """What a fresh clone of this working tree holds: tracked and new files, nothing git ignores
    (so no copied page assets), plus node_modules as `npm ci` makes it (linked, not copied)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    assert (ROOT / "node_modules" / "dropzone").is_dir(), "run `npm ci` (make assets) first"
    (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    checkout = fresh_checkout(tmp_path_factory.mktemp("checkout"))
    assert not (checkout / "src" / DROPZONE).exists()
    outdir = tmp_path_factory.mktemp("dist")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the checkout's own src
    subprocess.run(
        [sys.executable, str(checkout / "tools" / "dist.py"), "--outdir", str(outdir)],
        check=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        cwd=checkout,
        env=env,
    )
    return outdir


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[list[Shipped]]:
    started: list[Shipped] = []
    yield started
    for server in started:
        server.stop()


def start(started: list[Shipped], root: Path, prefix: list[str], **env: str) -> Shipped:
    root.mkdir()
    # Not the checkout's source (the developer's PYTHONPATH): only what was shipped.
    env = {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1", **env}
    server = Shipped(root, ["--allow-downloads"], prefix=prefix, env=env)
    started.append(server)
    return server.start()


def round_trip(server: Shipped, tmp_path: Path) -> None:
    """Dropzone's protocol, 5 chunks of 1 MiB (the last one short), 4 in flight; then download."""
    source = random_file(tmp_path / "round trip.bin", 4 * MIB + 12345)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        stored = upload(client, source, chunk_size=MIB)
        assert stored["sha256"] == sha256_of(source)
        download = client.get(f"/download/{stored['id']}")
    assert download.status_code == 200
    assert download.content == source.read_bytes()


def test_sdist_and_wheel_carry_the_page_assets(dist: Path) -> None:
    (wheel,) = dist.glob("pyfiledrop-*.whl")
    (sdist,) = dist.glob("pyfiledrop-*.tar.gz")
    with zipfile.ZipFile(wheel) as archive:
        assert DROPZONE in archive.namelist()
    with tarfile.open(sdist) as archive:
        assert any(name.endswith("/src/" + DROPZONE) for name in archive.getnames())


def test_wheel_in_a_clean_venv_serves_a_page_whose_dropzone_loads(
    dist: Path, tmp_path: Path, shipped: list[Shipped]
) -> None:
    (wheel,) = dist.glob("pyfiledrop-*.whl")
    venv = tmp_path / "venv"
    # Not the checkout's source: with it on PYTHONPATH pip would think pyfiledrop is installed.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
        env=env,
    )
    server = start(shipped, tmp_path / "wheel", [str(venv / "bin" / "pyfiledrop")])
    script = httpx.get(f"{server.url}/static/vendor/dropzone/dropzone-min.js", timeout=10)
    assert script.status_code == 200
    assert script.content == (ROOT / "node_modules" / "dropzone/dist/dropzone-min.js").read_bytes()
    round_trip(server, tmp_path)
    page_uploads_with_dropzone(server, tmp_path)


def page_uploads_with_dropzone(server: Shipped, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.exists(), "Chromium missing: run `make browser-deps`"
    source = random_file(tmp_path / "from the page.bin", 3 * MIB)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server.url)
            # The hidden input exists only once Dropzone has loaded and taken over the box.
            page.set_input_files("input.dz-hidden-input", [str(source)], timeout=15000)
            expect(page.locator("#previews .file[data-state=done]")).to_have_count(1, timeout=60000)
            expect(page.locator("#loader-error")).to_be_hidden()
        finally:
            browser.close()
    assert errors == []
    assert sha256_of(server.storage_dir / source.name) == sha256_of(source)


def test_zipapp_takes_an_upload_exact(dist: Path, tmp_path: Path, shipped: list[Shipped]) -> None:
    python3 = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin") or sys.executable
    # Outside any venv: the zipapp brings its own dependencies (unpacked under SHIV_ROOT).
    server = start(
        shipped,
        tmp_path / "pyz",
        [python3, str(dist / "pyfiledrop.pyz")],
        SHIV_ROOT=str(tmp_path / "shiv"),
    )
    round_trip(server, tmp_path)


def test_executable_takes_an_upload_exact(
    dist: Path, tmp_path: Path, shipped: list[Shipped]
) -> None:
    server = start(shipped, tmp_path / "exe", [str(dist / "pyfiledrop")])
    round_trip(server, tmp_path)
    # It holds the one-node server: asking for PostgreSQL is one line, not a traceback.
    refused = subprocess.run(
        [str(dist / "pyfiledrop"), "serve", "--database", "postgresql://u@127.0.0.1:1/db"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert refused.stderr.startswith("pyfiledrop: error: --database: PostgreSQL needs psycopg")
    assert refused.stderr.count("\n") == 1, refused.stderr


def test_server_without_its_page_assets_refuses_to_start(tmp_path: Path) -> None:
    package = tmp_path / "pyfiledrop"
    shutil.copytree(
        ROOT / "src" / "pyfiledrop", package, ignore=shutil.ignore_patterns("vendor", "__pycache__")
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyfiledrop",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(free_port()),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "page assets missing" in result.stderr and "dropzone-min.js" in result.stderr
    assert not (tmp_path / "storage").exists(), "refused before making any folder"


def load_assets_tool(root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = importlib.util.spec_from_file_location("assets_tool", ROOT / "tools" / "assets.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    monkeypatch.setattr(tool, "ROOT", root)
    monkeypatch.setattr(tool, "NODE_MODULES", root / "node_modules")
    monkeypatch.setattr(tool, "VENDOR", root / "vendor")
    return tool


def test_build_without_npm_or_assets_fails_saying_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = load_assets_tool(tmp_path, monkeypatch)
    (tmp_path / "package-lock.json").write_text("{}")
    monkeypatch.setattr(tool.shutil, "which", lambda name: None)
    with pytest.raises(tool.AssetsMissing, match=r"run `npm ci` in"):
        tool.copy_assets()


def test_build_copies_the_assets_from_node_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = load_assets_tool(tmp_path, monkeypatch)
    for source in tool.ASSETS.values():
        (tmp_path / "node_modules" / source).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "node_modules" / source).write_text(source)
    tool.copy_assets()
    for target, source in tool.ASSETS.items():
        assert (tmp_path / "vendor" / target).read_text() == source
