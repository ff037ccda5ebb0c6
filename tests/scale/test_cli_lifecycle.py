"""The uploader CLI and the lifecycle (expiry, delete) on every backend."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.client.helpers import json_lines, run_cli
from tests.conftest import random_file, sha256_of
from tests.scale.conftest import Backend

MiB = 1024 * 1024


def test_cli_upload_and_download_round_trip(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a")
    state = tmp_path / "state"
    source = random_file(tmp_path / "cli.bin", 17 * MiB + 5)
    result = run_cli(
        state, "upload", str(source), "--url", server.url, "--chunk-size", "5MiB",
        "--parallel", "4", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert record["sha256"] == sha256_of(source)
    folder = tmp_path / "down"
    folder.mkdir()
    url = record["url"] if record["url"].startswith("http") else f"{server.url}{record['url']}"
    result = run_cli(state, "download", url, "-o", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    (summary,) = json_lines(result.stdout)
    assert summary["verified"] is True
    assert sha256_of(folder / "cli.bin") == record["sha256"]
    assert backend.leftovers() == []


def test_expiry_and_delete_remove_the_bytes(backend: Backend, tmp_path: Path) -> None:
    server = backend.start("-a", "--expire-after", "1h")  # expired by hand below
    with httpx.Client(base_url=server.url, timeout=30) as client:
        soon = client.put("/put/soon.txt", content=b"soon").json()
        keep = client.put("/put/keep.txt", content=b"keep").json()
        assert len(backend.objects()) == 2
        deleted = httpx.delete(
            f"{server.url}/api/files/{keep['id']}", headers={"X-Delete-Token": keep["delete_token"]}
        )
        assert deleted.status_code == 200
        assert len(backend.objects()) == 1
        assert client.get(soon["url"]).content == b"soon"
        assert soon["expires"] is not None
        server.expire(soon["id"])
        assert client.get(soon["url"]).status_code == 410
        assert client.get(keep["url"]).status_code in (404, 410)
