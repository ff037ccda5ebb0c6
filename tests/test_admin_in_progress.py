"""`pyfiledrop files list --in-progress`, run while uploads are half done on a live server."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from pyfiledrop.web.owner import owner_id
from tests.conftest import Server, ServerFactory, random_file
from tests.dz import send_chunk

KIB = 1024


def files_list(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "pyfiledrop", "files", "list", "--in-progress", *args,
            "--storage", str(server.storage_dir), "--chunks", str(server.chunks_dir),
            "--data", str(server.data_dir),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip


def test_in_progress_lists_half_done_dropzone_and_tus_uploads(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "movie.mkv", 300 * KIB)
    dz_id = str(uuid.uuid4())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        owner = owner_id(client.cookies["pfd_owner"])  # the books keep its hash
        for index in (0, 2):  # the last chunk is short: 300 - 256 = 44 KiB
            assert send_chunk(client, source, dz_id, index, 128 * KIB).status_code == 200
        created = client.post(
            "/files", headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(100 * KIB)}
        )
        assert created.status_code == 201
        tus_url = created.headers["Location"]
        patched = client.patch(
            tus_url,
            content=source.read_bytes()[: 30 * KIB],
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patched.status_code == 204

    rows = {
        row["protocol"]: row for row in json.loads(files_list(server, "--json").stdout)["uploads"]
    }
    assert set(rows) == {"dropzone", "tus"}
    dz = rows["dropzone"]
    assert dz["id"] == dz_id and dz["name"] == "movie.mkv" and dz["state"] == "receiving"
    assert (dz["received"], dz["size"]) == (128 * KIB + 44 * KIB, 300 * KIB)
    assert rows["tus"]["received"] == 30 * KIB and rows["tus"]["size"] == 100 * KIB
    for row in rows.values():
        assert row["owner"] == owner[:12]
        assert 0 <= row["idle_seconds"] <= row["age_seconds"] < 600

    text = files_list(server).stdout
    assert f"{dz_id}  {owner[:12]}  dropzone   172.0 KiB of 300.0 KiB" in text
    assert "30.0 KiB of 100.0 KiB" in text


def test_in_progress_says_so_when_there_are_none(server_factory: ServerFactory) -> None:
    server = server_factory()
    assert files_list(server).stdout == "no uploads in progress\n"
    assert json.loads(files_list(server, "--json").stdout) == {"uploads": []}
