"""Real tus clients against `pyfiledrop serve`: tuspy (PyPI) and tus-js-client (npm, under Node)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Server, ServerFactory, random_file, sha256_of

MiB = 1024 * 1024
HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TUS = {"Tus-Resumable": "1.0.0"}


def octets_at(offset: int) -> dict[str, str]:
    return {"Content-Type": "application/offset+octet-stream", "Upload-Offset": str(offset)}


def owner_cookie(server: Server) -> str:
    response = httpx.get(f"{server.url}/healthz")
    return f"pfd_owner={response.cookies['pfd_owner']}"


def tuspy(server: Server, source: Path, store: Path, cookie: str, *, trickle: float = 0.0,
          chunk: int = 8 * MiB, checksum: bool = False) -> subprocess.Popen[str]:  # fmt: skip
    return subprocess.Popen(
        [
            sys.executable,
            str(HERE / "tuspy_client.py"),
            f"{server.url}/files/",
            str(source),
            str(store),
            str(chunk),
            str(trickle),
            cookie,
            "1" if checksum else "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def lines_of(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr[-3000:]
    return [json.loads(line) for line in stdout.splitlines()]


def listed(server: Server, cookie: str) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = httpx.get(
        f"{server.url}/api/files", headers={"Cookie": cookie}
    ).json()["files"]
    return files


@pytest.mark.slow
def test_tuspy_256_mib_in_8_mib_chunks_resumes_after_being_killed(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "tuspy-256.bin", 256 * MiB)
    store = tmp_path / "tuspy-urls.json"
    cookie = owner_cookie(server)
    first = tuspy(server, source, store, cookie, trickle=0.02)
    assert first.stdout is not None
    url = ""
    for line in first.stdout:
        progress = json.loads(line)
        url = progress["url"] or url
        if progress.get("offset", 0) >= 96 * MiB:
            time.sleep(0.1)  # in the middle of the next body (1 MiB pieces, 20 ms apart)
            first.send_signal(signal.SIGKILL)
            break
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while True:  # the server notices the cut, keeps what arrived and releases the lock
        kept = int(httpx.head(url, headers=TUS).headers["upload-offset"])
        state = httpx.get(url).json()
        if state["offset"] == kept or time.monotonic() > deadline:
            break
    assert 96 * MiB <= kept < 256 * MiB
    print(f"killed at offset {kept} ({kept % (8 * MiB)} bytes into a chunk)")

    second = lines_of(tuspy(server, source, store, cookie))
    assert second[0]["url"] == url
    assert second[0]["start"] >= kept  # resumed, not restarted
    answer = second[-1]
    assert answer["sha256"] == sha256_of(source)
    record = httpx.get(
        f"{server.url}/api/files/{answer['file']}", headers={"Cookie": cookie}
    ).json()
    assert record["sha256"] == sha256_of(source)
    assert record["size"] == 256 * MiB
    assert [entry["id"] for entry in listed(server, cookie)] == [answer["file"]]
    assert sha256_of(server.storage_dir / "tuspy-256.bin") == sha256_of(source)
    assert list(server.chunks_dir.iterdir()) == []
    source.unlink()


def test_tuspy_with_checksums(server_factory: ServerFactory, tmp_path: Path) -> None:
    server = server_factory()
    source = random_file(tmp_path / "tuspy-sum.bin", 5 * MiB + 321)
    cookie = owner_cookie(server)
    lines = lines_of(tuspy(server, source, tmp_path / "u.json", cookie, chunk=MiB, checksum=True))
    assert lines[0]["start"] == 0
    assert lines[-1]["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "tuspy-sum.bin") == sha256_of(source)


def node_client(server: Server, source: Path, parallel: int, chunk: int | str, cookie: str,
                checksum: str, retry: str = "", upload_url: str = "",
                ) -> dict[str, Any]:  # fmt: skip
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "tus-js-client").is_dir():
        pytest.skip("node or tus-js-client missing (make install runs npm ci)")
    result = subprocess.run(
        [
            node,
            str(HERE / "tus_js_client.mjs"),
            f"{server.url}/files/",
            str(source),
            str(parallel),
            str(chunk),
            cookie,
            checksum,
            retry,
            upload_url,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


@pytest.mark.parametrize("checksum", ["", "sha1"])
def test_tus_js_client_four_parallel_uploads_joined(
    server_factory: ServerFactory, tmp_path: Path, checksum: str
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "js-parallel.bin", 40 * MiB + 99)
    cookie = owner_cookie(server)
    answer = node_client(server, source, 4, 4 * MiB, cookie, checksum)
    assert answer["partials"] == 4
    assert answer["sha256"] == sha256_of(source)
    assert [entry["sha256"] for entry in listed(server, cookie)] == [sha256_of(source)]
    assert sha256_of(server.storage_dir / "js-parallel.bin") == sha256_of(source)
    assert list(server.chunks_dir.iterdir()) == []  # the partial uploads are gone once joined
    head = httpx.head(answer["url"], headers=TUS)
    assert head.headers["upload-concat"].startswith("final;")


def test_tus_js_client_single_upload_with_checksum(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "js-one.bin", 9 * MiB + 5)
    answer = node_client(server, source, 1, 2 * MiB, owner_cookie(server), "sha1")
    assert answer["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "js-one.bin") == sha256_of(source)


def test_tuspy_across_two_worker_processes(server_factory: ServerFactory, tmp_path: Path) -> None:
    """Each PATCH may reach another process: the lock and offset live in the database, and the
    SHA-256 is caught up from the file by whichever process writes next."""
    server = server_factory("--workers", "2")
    source = random_file(tmp_path / "two-workers.bin", 24 * MiB + 17)
    lines = lines_of(tuspy(server, source, tmp_path / "u.json", owner_cookie(server), chunk=MiB))
    assert lines[-1]["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "two-workers.bin") == sha256_of(source)


def test_sigkill_mid_patch_then_tus_js_client_resumes_at_once(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    """A PATCH cut by a crash keeps what it saved, and the restarted server holds no lock of the
    dead one: tus-js-client with its default retry delays (about 9 s in all) finishes the file."""
    server = server_factory()
    source = random_file(tmp_path / "crash.bin", 40 * MiB + 7)
    data = source.read_bytes()
    created = httpx.post(
        f"{server.url}/files/",
        headers={
            **TUS,
            "Upload-Length": str(len(data)),
            "Upload-Metadata": "filename Y3Jhc2guYmlu",
        },
    )
    url = created.headers["location"]
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    connection.sendall(
        (
            f"PATCH {urlsplit(url).path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
            f"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode()
        + data[: 16 * MiB]
    )
    deadline = time.monotonic() + 30
    while int(httpx.head(url, headers=TUS).headers["upload-offset"]) < 16 * MiB:
        assert time.monotonic() < deadline, "the PATCH in progress saved nothing"
        time.sleep(0.05)
    connection.sendall(data[16 * MiB : 20 * MiB])  # in the middle of the body, not saved yet
    server.kill()
    connection.close()
    server.start()
    kept = int(httpx.head(url, headers=TUS).headers["upload-offset"])
    assert 16 * MiB <= kept <= 20 * MiB
    started = time.monotonic()
    empty = httpx.patch(url, headers={**TUS, **octets_at(kept)})
    assert empty.status_code == 204, empty.text  # the dead process's lock was freed at start
    assert time.monotonic() - started < 2
    answer = node_client(server, source, 1, "Infinity", "", "", "default", url)
    assert answer["sha256"] == sha256_of(source)
    assert sha256_of(server.storage_dir / "crash.bin") == sha256_of(source)
    assert list(server.chunks_dir.iterdir()) == []


def test_tuspy_with_its_defaults(server_factory: ServerFactory, tmp_path: Path) -> None:
    """No metadata given: tuspy sends an empty `Upload-Metadata:` header, which means none."""
    from tusclient import client as tus_client

    server = server_factory()
    source = random_file(tmp_path / "defaults.bin", 3 * MiB + 1)
    uploader = tus_client.TusClient(f"{server.url}/files/").uploader(str(source))
    uploader.upload()
    assert uploader.offset == source.stat().st_size
    state = httpx.get(uploader.url).json()
    assert state["file"]["sha256"] == sha256_of(source)
