"""What one uploader learns about another's files through names: nothing. Each sees the name it
sent (sanitized); uniqueness on disk is the server's business and never fails; whether content
was deduplicated is the operator's to see (`stats`, `files info`), not the uploader's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness import put, running_app


def admin(root: Path, *args: str) -> dict[str, object]:
    folders = [f"--{name}={root / name}" for name in ("data", "storage", "chunks")]
    done = subprocess.run(
        [sys.executable, "-m", "pyfiledrop", *args, *folders, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_second_uploader_sees_its_own_name_and_no_dedup_flag(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        first = put(app.client, "layoffs-2026.xlsx", b"secret plan")
        other = app.other_client()
        same_name = put(other, "layoffs-2026.xlsx", b"my own bytes")
        same_bytes = put(other, "copy.xlsx", b"secret plan")
        for record in (first, same_name, same_bytes):
            assert "deduplicated" not in record
        assert same_name["name"] == "layoffs-2026.xlsx"
        listed = other.get("/api/files").json()["files"]
        assert {row["name"] for row in listed} == {"layoffs-2026.xlsx", "copy.xlsx"}
        assert all("deduplicated" not in row for row in listed)
        info = other.get(f"/api/files/{same_bytes['id']}").json()
        assert "deduplicated" not in info
        download = other.get(same_name["url"])
        assert download.content == b"my own bytes"
        assert "layoffs-2026.xlsx" in download.headers["content-disposition"]
        on_disk = sorted(path.name for path in app.settings.storage.iterdir())
        assert on_disk == ["copy.xlsx", "layoffs-2026 (1).xlsx", "layoffs-2026.xlsx"]
    # The operator sees both names, and the deduplication.
    info = admin(tmp_path, "files", "info", str(same_name["id"]))
    assert info["name"] == "layoffs-2026.xlsx"
    assert str(info["path"]).endswith("layoffs-2026 (1).xlsx")
    assert (
        admin(tmp_path, "files", "info", str(same_bytes["id"]))["deduplicated_from"] == first["id"]
    )
    assert admin(tmp_path, "stats")["deduplicated_files"] == 1


def test_ten_thousand_taken_names_still_leave_room(tmp_path: Path) -> None:
    with running_app(tmp_path) as app:
        storage = app.settings.storage
        (storage / "report.pdf").write_bytes(b"")
        for number in range(1, 10_000):
            (storage / f"report ({number}).pdf").write_bytes(b"")
        record = put(app.client, "report.pdf", b"mine")
        assert record["name"] == "report.pdf"
        assert app.client.get(record["url"]).content == b"mine"
