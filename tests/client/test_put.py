"""`curl -T` to `PUT /put/<name>`: the upload path for machines without pyfiledrop."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.client.helpers import MiB, run_cli
from tests.conftest import Server, random_file, sha256_of

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")


def curl_put(path: Path, url: str) -> dict[str, object]:
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--fail-with-body", "-T", str(path), url],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    record: dict[str, object] = json.loads(result.stdout)
    return record


@pytest.mark.slow
def test_curl_put_one_gib_is_exact(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "big.iso", 1024 * MiB)
    try:
        record = curl_put(source, f"{server.url}/put/big.iso")
        stored = server.storage_dir / str(record["name"])
        assert record["name"] == "big.iso"
        assert record["size"] == source.stat().st_size == stored.stat().st_size
        assert sha256_of(stored) == sha256_of(source) == record["sha256"]
    finally:
        source.unlink()
        for path in server.stored_files():
            path.unlink()


def test_curl_put_then_pyfiledrop_download(server: Server, tmp_path: Path) -> None:
    source = random_file(tmp_path / "notes.txt", 3 * MiB + 1)
    record = curl_put(source, f"{server.url}/put/notes.txt")
    target = tmp_path / "back.txt"
    result = run_cli(tmp_path / "state", "download", str(record["url"]), "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert sha256_of(target) == sha256_of(source) == record["sha256"]
