"""`pyfiledrop download` over real HTTP: names, resume with Range, SHA-256 checks."""

from __future__ import annotations

import errno
import hashlib
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyfiledrop.client import state as saved
from tests.client.helpers import MiB, json_lines, run_cli, start_cli, wait_until
from tests.client.relay import relay
from tests.conftest import Server, ServerFactory, random_file, sha256_of
from tests.dz import upload


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def published(server: Server, source: Path) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        return upload(client, source, 4 * MiB)


def download_url(server: Server, record: dict[str, Any]) -> str:
    url = str(record["url"])
    return url if url.startswith("http") else f"{server.url}{url}"


def test_download_is_exact_and_named_by_the_server(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "résumé (final) €.pdf", 9 * MiB + 3)
    record = published(server, source)
    folder = tmp_path / "downloads"
    folder.mkdir()
    url = download_url(server, record)
    result = run_cli(state_dir, "download", url, "-o", str(folder), "--json")
    assert result.returncode == 0, result.stderr
    (summary,) = json_lines(result.stdout)
    target = folder / source.name
    assert summary["path"] == str(target)
    assert summary["verified"] is True
    assert sha256_of(target) == sha256_of(source) == summary["sha256"]
    assert list(folder.iterdir()) == [target]
    assert list(state_dir.glob("download-*")) == []

    again = run_cli(state_dir, "download", url, "-o", str(folder))
    assert again.returncode == 1
    assert "exists; choose another name with -o PATH" in again.stderr


def test_cut_connection_resumes_with_range_in_the_same_run(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "cut.bin", 24 * MiB)
    record = published(server, source)
    target = tmp_path / "out.bin"
    with relay(server.port, cut_at=10 * MiB) as cutting:
        url = f"{cutting.url}{record['url']}"
        result = run_cli(state_dir, "download", url, "-o", str(target), "--json")
        assert cutting.cut
    assert result.returncode == 0, result.stderr
    assert "connection lost" in result.stderr and "resuming" in result.stderr
    (summary,) = json_lines(result.stdout)
    assert sha256_of(target) == sha256_of(source)
    # Resumed, not restarted: well under two whole copies crossed the wire.
    assert summary["received"] < source.stat().st_size + 11 * MiB


def test_killed_download_resumes_on_rerun(server: Server, tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "long.bin", 128 * MiB)
    killed_then_resumed(server, tmp_path, state_dir, source, published(server, source))


def test_killed_download_of_a_one_time_link_resumes_on_rerun(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    """The rerun sends the resume token saved with the counted download; without it a one-time
    link answers 410 to any Range request once its download was counted."""
    source = random_file(tmp_path / "once.bin", 128 * MiB)
    with source.open("rb") as body:
        answer = httpx.put(
            f"{server.url}/put/once.bin", content=body, params={"max_downloads": "1"}, timeout=60
        )
    assert answer.status_code == 201, answer.text
    killed_then_resumed(server, tmp_path, state_dir, source, answer.json())


def killed_then_resumed(
    server: Server, tmp_path: Path, state_dir: Path, source: Path, record: dict[str, Any]
) -> None:
    target = tmp_path / "long copy.bin"
    part = tmp_path / "long copy.bin.part"
    args = ["download", download_url(server, record), "-o", str(target), "--json"]
    process = start_cli(state_dir, *args)
    wait_until(
        lambda: process.poll() is not None or (part.exists() and part.stat().st_size > 8 * MiB),
        what="a partial download",
    )
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, "finished before it could be killed"
    already = part.stat().st_size
    assert 0 < already < source.stat().st_size

    result = run_cli(state_dir, *args)
    assert result.returncode == 0, result.stderr
    (summary,) = json_lines(result.stdout)
    assert summary["received"] == source.stat().st_size - already
    assert sha256_of(target) == sha256_of(source)
    assert not part.exists()


def partial_with_state(
    server: Server, record: dict[str, Any], target: Path, data: bytes
) -> tuple[str, str]:
    """A `.part` file holding `data`, as a cut download would leave; (URL, current ETag)."""
    url = download_url(server, record)
    target.with_name(target.name + ".part").write_bytes(data)
    etag = httpx.get(url, headers={"Range": "bytes=0-0"}).headers["etag"]
    return url, str(etag)


def test_damaged_partial_file_fails_the_checksum(
    server: Server, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "source.bin", 6 * MiB)
    record = published(server, source)
    target = tmp_path / "copy.bin"
    damaged = bytearray(source.read_bytes()[: 2 * MiB])
    damaged[12345] ^= 0x01
    url, etag = partial_with_state(server, record, target, bytes(damaged))
    monkeypatch.setenv("PYFILEDROP_STATE_DIR", str(state_dir))
    saved.save_download(saved.DownloadState(str(target), url, etag))

    result = run_cli(state_dir, "download", url, "-o", str(target))
    assert result.returncode == 1
    assert "SHA-256 mismatch" in result.stderr and "removed the partial file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not target.exists()
    assert not target.with_name("copy.bin.part").exists()


def test_changed_file_on_the_server_restarts_the_download(
    server: Server, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = random_file(tmp_path / "source.bin", 3 * MiB)
    record = published(server, source)
    target = tmp_path / "copy.bin"
    url, _ = partial_with_state(server, record, target, b"x" * MiB)
    monkeypatch.setenv("PYFILEDROP_STATE_DIR", str(state_dir))
    saved.save_download(saved.DownloadState(str(target), url, '"' + "0" * 64 + '"'))

    result = run_cli(state_dir, "download", url, "-o", str(target), "--json")
    assert result.returncode == 0, result.stderr
    assert "starting over: the file on the server changed" in result.stderr
    assert json_lines(result.stdout)[0]["received"] == 3 * MiB
    assert sha256_of(target) == sha256_of(source)


def test_download_errors_are_one_line(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory()  # downloads disabled, as by default
    record = published(server, random_file(tmp_path / "secret.bin", 1000))
    result = run_cli(state_dir, "download", download_url(server, record), "-o", str(tmp_path))
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "403" in line

    allowing = server_factory("--allow-downloads")
    missing = run_cli(state_dir, "download", f"{allowing.url}/download/nope", "-o", str(tmp_path))
    assert missing.returncode == 1 and "404" in missing.stderr

    nowhere = run_cli(state_dir, "download", "http://127.0.0.1:9/download/x", "--retries", "0")
    assert nowhere.returncode == 1 and "cannot reach" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr


def test_an_existing_output_is_refused_before_the_link_is_used(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    record = httpx.put(
        f"{server.url}/put/once.txt", params={"max_downloads": "1"}, content=b"only once"
    ).json()
    url = download_url(server, record)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "once.txt").write_bytes(b"mine")
    for output in (taken, taken / "once.txt"):  # named by the server, or by -o
        refused = run_cli(state_dir, "download", url, "-o", str(output))
        assert refused.returncode == 1
        assert "exists; choose another name with -o PATH" in refused.stderr
    assert (taken / "once.txt").read_bytes() == b"mine"
    # The one-time link still works: nothing above downloaded it.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    result = run_cli(state_dir, "download", url, "-o", str(fresh))
    assert result.returncode == 0, result.stderr
    assert (fresh / "once.txt").read_bytes() == b"only once"


class _FullDisk:
    """A `direct.Writer` whose disk fills up after `room` bytes."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write_at(self, view: memoryview, offset: int) -> None:
        if offset + len(view) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")


def test_a_write_error_on_the_writer_thread_stops_the_body_and_is_raised() -> None:
    from pyfiledrop.client.download import PIPE_BUFFER_SIZE, _pipe

    sent = [0]

    def endless(view: memoryview) -> int:
        view[:] = b"x" * len(view)
        sent[0] += len(view)
        return len(view)

    with pytest.raises(OSError) as raised:
        _pipe(endless, _FullDisk(3 * PIPE_BUFFER_SIZE), 0, hashlib.sha256(), lambda n: None)  # type: ignore[arg-type]
    assert raised.value.errno == errno.ENOSPC
    assert sent[0] < 64 * PIPE_BUFFER_SIZE  # it stopped receiving soon after


def test_no_flush_parses_and_flush_is_the_default() -> None:
    from pyfiledrop import cli

    parse = cli.build_parser().parse_args
    assert parse(["download", "http://h:1/download/x"]).flush is True
    assert parse(["download", "http://h:1/download/x", "--no-flush"]).flush is False


@pytest.mark.parametrize("flush", [True, False])
def test_no_flush_writes_the_exact_file_without_fsync_or_direct_writes(
    server: Server,
    tmp_path: Path,
    state_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flush: bool,
) -> None:
    import os

    from pyfiledrop.client import cli as client_cli
    from pyfiledrop.client import direct, download

    source = random_file(tmp_path / "scratch.bin", 9 * MiB + 5)
    url = download_url(server, published(server, source))
    synced: list[int] = []

    def counting(real: Any) -> Any:
        def sync(fd: int) -> None:
            synced.append(fd)
            real(fd)

        return sync

    real_open = os.open
    direct_opens: list[str] = []

    def opening(path: Any, flags: int, *args: Any) -> int:
        if direct._O_DIRECT and flags & direct._O_DIRECT:
            direct_opens.append(str(path))
        return real_open(path, flags, *args)

    monkeypatch.setenv("PYFILEDROP_STATE_DIR", str(state_dir))
    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "fsync", counting(os.fsync))
    monkeypatch.setattr(download, "_datasync", counting(download._datasync))
    monkeypatch.setattr(download, "FLUSH_EVERY_BYTES", MiB)  # the flusher's turn comes too
    target = tmp_path / "out.bin"
    argv = ["download", url, "-o", str(target), "--json"] + ([] if flush else ["--no-flush"])
    assert client_cli.main(argv) == 0
    (summary,) = json_lines(capsys.readouterr().out)
    assert summary["verified"] is True
    assert sha256_of(target) == sha256_of(source) == summary["sha256"]
    assert not (tmp_path / "out.bin.part").exists()
    assert bool(synced) is flush
    assert bool(direct_opens) is (flush and bool(direct._O_DIRECT))
