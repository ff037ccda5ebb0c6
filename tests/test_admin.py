"""The lifecycle from the command line: `pyfiledrop files ...`, `pyfiledrop delete`, and the
uploader's --expire-after / --max-downloads / --password, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from pyfiledrop.client.delete import api_address
from tests.conftest import Server, ServerFactory, random_file, sha256_of

CLI_TIMEOUT_SECONDS = 60


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYFILEDROP_")}
    return subprocess.run(
        [sys.executable, "-m", "pyfiledrop", *args],
        env={**clean, "PYFILEDROP_STATE_DIR": "/nonexistent-state", **(env or {})},
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_SECONDS,
        check=False,
    )


def files_cli(server: Server, *args: str) -> Any:
    folders = ["--data", str(server.data_dir), "--storage", str(server.storage_dir)]
    done = cli("files", *args, *folders, "--chunks", str(server.chunks_dir), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def put(server: Server, name: str, data: bytes, **params: str) -> dict[str, Any]:
    response = httpx.put(f"{server.url}/put/{name}", content=data, params=params, timeout=10)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def test_files_list_info_rm_and_purge(server_factory: ServerFactory) -> None:
    server = server_factory("-a")
    kept = put(server, "kept.txt", b"kept")
    short = put(server, "short.txt", b"short", expires_in="1h")  # expired by hand below
    removed = put(server, "removed.txt", b"removed")
    listed = files_cli(server, "list")["files"]
    assert {row["name"] for row in listed} == {"kept.txt", "short.txt", "removed.txt"}
    info = files_cli(server, "info", kept["id"])
    assert info["sha256"] == kept["sha256"] and info["on_disk"] is True
    assert info["status"] == "served" and info["path"] == str(server.storage_dir / "kept.txt")

    result = files_cli(server, "rm", removed["id"])
    assert result == {"id": removed["id"], "name": "removed.txt", "removed": True, "was": None}
    assert not (server.storage_dir / "removed.txt").exists()
    gone = httpx.get(removed["url"])  # PUT answers an absolute link
    assert gone.status_code == 410
    assert gone.json()["error"] == "this file was removed by the server's operator"

    server.expire(short["id"])
    purged = files_cli(server, "purge-expired")
    assert [row["id"] for row in purged["removed"]] == [short["id"]]
    assert purged["removed"][0]["reason"] == "expired"
    assert server.stored_files() == [server.storage_dir / "kept.txt"]
    assert [row["id"] for row in files_cli(server, "list")["files"]] == [kept["id"]]
    everything = files_cli(server, "list", "--all")["files"]
    assert {row["id"]: row["status"] for row in everything} == {
        kept["id"]: "served",
        short["id"]: "expired",
        removed["id"]: "removed",
    }
    missing = cli("files", "info", "NoSuchFileNoSuchFile0000", "--data", str(server.data_dir))
    assert missing.returncode == 1 and "no file with id" in missing.stdout
    plain = cli(
        "files", "list", "--data", str(server.data_dir), "--storage", str(server.storage_dir)
    )
    assert plain.returncode == 0 and "kept.txt" in plain.stdout


def test_delete_command_with_the_token(server_factory: ServerFactory) -> None:
    server = server_factory("-a")
    record = put(server, "bye.txt", b"bye")
    link = record["url"]  # PUT answers an absolute link
    without = cli("delete", link)
    assert without.returncode == 1
    assert "404" in without.stderr and "--token" in without.stderr
    wrong = cli("delete", link, "--token", "not-the-token")
    assert wrong.returncode == 1
    assert (server.storage_dir / "bye.txt").exists()
    done = cli("delete", link, "--token", record["delete_token"])
    assert done.returncode == 0, done.stderr
    assert f"deleted {record['id']}" in done.stdout
    assert not (server.storage_dir / "bye.txt").exists()
    again = cli("delete", link, "--json", env={"PYFILEDROP_DELETE_TOKEN": record["delete_token"]})
    assert again.returncode == 0 and json.loads(again.stdout)["status_code"] == 410


def test_api_address_from_links() -> None:
    assert api_address("http://h:1/download/abcDEF_-123?token=t") == (
        "http://h:1/api/files/abcDEF_-123",
        "t",
    )
    assert api_address("https://h/drop/api/files/x1") == ("https://h/drop/api/files/x1", None)


def test_uploader_options_and_password(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory("-a", "--password", "pw", "--expire-after", "7d")
    source = random_file(tmp_path / "once.bin", 3 * 1024 * 1024 + 5)
    base = ["upload", str(source), "--url", server.url, "--chunk-size", "1MiB", "--json"]
    refused = cli(*base)
    assert refused.returncode == 3 and "401" in refused.stderr  # 3: a refused password
    uploaded = cli(
        *base, "--max-downloads", "1", "--expire-after", "2h", env={"PYFILEDROP_PASSWORD": "pw"}
    )
    assert uploaded.returncode == 0, uploaded.stderr
    result = json.loads(uploaded.stdout)
    assert result["sha256"] == sha256_of(source) and len(result["delete_token"]) == 48
    headers = {"Authorization": "Bearer pw"}
    info = httpx.get(f"{server.url}/api/files/{result['id']}", headers=headers)
    # The owner is the uploader's cookie, not the password: the API shows it only to them.
    assert info.status_code == 404
    first = httpx.get(result["url"])
    assert first.status_code == 200 and len(first.content) == source.stat().st_size
    assert httpx.get(result["url"]).status_code == 410
    out = tmp_path / "out.bin"
    fetched = cli("download", result["url"], "-o", str(out), "--password", "pw")
    assert fetched.returncode == 1 and "410" in fetched.stderr
    deleted = cli("delete", result["url"], "--token", result["delete_token"], "--password", "pw")
    assert deleted.returncode == 0, deleted.stderr


def test_delete_tokens_never_look_like_a_flag() -> None:
    # A token starting with "-" made `pyfiledrop delete URL --token TOKEN` fail at random.
    from pyfiledrop.lifecycle import delete_token

    tokens = [delete_token(b"k" * 32, f"file{i}") for i in range(2000)]
    assert not any(token.startswith("-") for token in tokens)
    assert all(len(token) == 48 for token in tokens)
