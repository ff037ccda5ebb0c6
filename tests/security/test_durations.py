"""Huge `expires_in` values are a 400, and no stored time can break a list (API or admin)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from pyfiledrop.meta import SQLITE_FILE
from tests.harness import app_client


@pytest.mark.parametrize(
    "value", ["1" + "0" * 400, "99999999999999999999w", "9" * 5000, "1000000000000d", "101y"]
)
def test_a_huge_expires_in_is_400_and_nothing_is_published(tmp_path: Path, value: str) -> None:
    with app_client(tmp_path) as client:
        answer = client.put("/put/a.bin", params={"expires_in": value}, content=b"data")
        assert answer.status_code == 400, answer.text
        assert client.get("/api/files").json()["files"] == []
    assert list((tmp_path / "storage").iterdir()) == []


def test_a_huge_stored_expiry_breaks_no_list(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        assert client.put("/put/a.bin", content=b"data").status_code == 201
        with sqlite3.connect(tmp_path / "data" / SQLITE_FILE) as db:
            db.execute("UPDATE files SET expires = 1e17")  # as an older version could store
        listed = client.get("/api/files")
        assert listed.status_code == 200, listed.text
        assert listed.json()["files"][0]["expires"] == "9999-12-31T23:59:59Z"
    folders = [f"--{name}={tmp_path / name}" for name in ("data", "storage", "chunks")]
    for args in (["files", "list"], ["files", "list", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "pyfiledrop", *args, *folders],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "a.bin" in done.stdout
