"""`pyfiledrop upload` over real HTTP against `pyfiledrop serve`, run as a user runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.client.helpers import (
    MiB,
    cli_env,
    counted,
    json_lines,
    received_on_server,
    run_cli,
    saved_upload,
    start_cli,
    wait_until,
)
from tests.client.relay import relay
from tests.client.stub_server import running as stub_server
from tests.conftest import Server, ServerFactory, random_file, sha256_of


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def assert_stored_exactly(server: Server, record: dict[str, object], source: Path) -> None:
    stored = server.path_of(record)
    assert sha256_of(stored) == sha256_of(source) == record["sha256"]
    assert record["size"] == source.stat().st_size == stored.stat().st_size


def test_uploads_several_files_exactly(server: Server, tmp_path: Path, state_dir: Path) -> None:
    files = [
        random_file(tmp_path / "odd size.bin", 5 * MiB + 77),
        random_file(tmp_path / "fünf €.dat", 3 * MiB),
        random_file(tmp_path / "empty", 0),
        random_file(tmp_path / "tiny.txt", 1),
    ]
    result = run_cli(
        state_dir, "upload", *map(str, files), "--url", server.url,
        "--chunk-size", "1MiB", "--parallel", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = json_lines(result.stdout)
    assert [r["name"] for r in records] == [f.name for f in files]
    for record, source in zip(records, files, strict=True):
        assert_stored_exactly(server, record, source)
        assert record["verified"] is True
        assert record["url"] == f"{server.url}/download/{record['id']}"
        assert set(record) >= {"name", "id", "url", "size", "sha256", "seconds", "mbps"}
    assert server.health()["chunks_counted"] == 6 + 3 + 1 + 1
    assert list(state_dir.glob("upload-*")) == []
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_one_gib_with_eight_in_flight(server: Server, tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "big.bin", 1024 * MiB)
    try:
        result = run_cli(
            state_dir, "upload", str(source), "--url", server.url, "--parallel", "8", "--json"
        )
        assert result.returncode == 0, result.stderr
        (record,) = json_lines(result.stdout)
        assert_stored_exactly(server, record, source)
        health = server.health()
        assert health["chunks_counted"] == health["chunk_requests"] == 128
    finally:
        source.unlink()
        for stored in server.stored_files():
            stored.unlink()


def interrupt_midway(
    server: Server, process: subprocess.Popen[str], after_chunks: int, how: signal.Signals
) -> str:
    """Interrupt the client once the server has `after_chunks` chunks; returns its stderr."""
    wait_until(
        lambda: counted(server) >= after_chunks or process.poll() is not None,
        what=f"{after_chunks} chunks on the server",
    )
    assert process.poll() is None, "the upload finished before it could be interrupted"
    process.send_signal(how)
    return process.communicate(timeout=30)[1]


def settled_count(server: Server) -> int:
    """Chunks counted once the server has dealt with whatever the interruption left in flight."""
    before = counted(server)
    while True:
        time.sleep(0.3)
        now = counted(server)
        if now == before:
            return now
        before = now


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_rerun_after_killed_client_sends_only_missing_chunks(
    server: Server, tmp_path: Path, state_dir: Path, how: signal.Signals
) -> None:
    source = random_file(tmp_path / "resume.bin", 64 * MiB + 5)
    args = ["upload", str(source), "--url", server.url, "--chunk-size", "256k", "--json"]
    total = 64 * 4 + 1
    process = start_cli(state_dir, *args)
    errors = interrupt_midway(server, process, after_chunks=total // 4, how=how)
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert "interrupted; run the same command again" in errors
        assert "Traceback" not in errors
    settled_count(server)
    state = saved_upload(state_dir)
    have = received_on_server(server, state["dzuuid"], state["owner"])
    assert 0 < len(have) < total
    before = server.health()

    result = run_cli(state_dir, *args)
    assert result.returncode == 0, result.stderr
    assert f"resuming: the server has {len(have)} of {total} chunks" in result.stderr
    (record,) = json_lines(result.stdout)
    assert_stored_exactly(server, record, source)
    after = server.health()
    assert after["chunk_requests"] - before["chunk_requests"] == total - len(have)
    assert after["duplicate_chunks"] == before["duplicate_chunks"]
    assert record["sent"] == source.stat().st_size - len(have) * 256 * 1024
    assert list(state_dir.glob("upload-*")) == []


def test_server_killed_midway_then_rerun_sends_only_missing_chunks(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "restart.bin", 64 * MiB)
    args = ["upload", str(source), "--url", server.url, "--chunk-size", "256k", "--json"]
    process = start_cli(state_dir, *args, "--retries", "0")
    wait_until(lambda: counted(server) >= 64 or process.poll() is not None, what="64 chunks")
    server.kill()
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 1
    assert "connection" in errors or "cannot reach" in errors
    assert "Traceback" not in errors

    server.start()
    state = saved_upload(state_dir)
    have = received_on_server(server, state["dzuuid"], state["owner"])
    assert 64 <= len(have) < 256
    result = run_cli(state_dir, *args)
    assert result.returncode == 0, result.stderr
    (record,) = json_lines(result.stdout)
    assert_stored_exactly(server, record, source)
    health = server.health()  # counters of the restarted process only
    assert health["chunk_requests"] == health["chunks_counted"] == 256 - len(have)


def test_client_rides_through_a_server_restart(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "ride.bin", 64 * MiB + 1)
    process = start_cli(
        state_dir, "upload", str(source), "--url", server.url, "--chunk-size", "256k", "--json"
    )
    wait_until(lambda: counted(server) >= 64 or process.poll() is not None, what="64 chunks")
    server.restart()
    output, errors = process.communicate(timeout=120)
    assert process.returncode == 0, errors
    assert "retrying" in errors
    (record,) = json_lines(output)
    assert_stored_exactly(server, record, source)


def test_damaged_chunk_is_caught_by_the_checksum(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "damaged.bin", 8 * MiB)
    with relay(server.port, flip_at=300_000) as damaging:
        result = run_cli(
            state_dir, "upload", str(source), "--url", damaging.url, "--chunk-size", "1MiB"
        )
        assert damaging.flipped
    assert result.returncode == 1
    assert "SHA-256 mismatch" in result.stderr
    assert "damaged" in result.stderr
    assert "Traceback" not in result.stderr
    (stored,) = server.stored_files()
    assert sha256_of(stored) != sha256_of(source)
    # The damaged upload is not resumed: running again uploads afresh, through a sound path.
    assert list(state_dir.glob("upload-*")) == []
    again = run_cli(state_dir, "upload", str(source), "--url", server.url, "--json")
    assert again.returncode == 0, again.stderr
    assert_stored_exactly(server, json_lines(again.stdout)[0], source)


def test_local_file_changed_between_runs_starts_over(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "changing.bin", 64 * MiB)
    args = ["upload", str(source), "--url", server.url, "--chunk-size", "256k", "--json"]
    process = start_cli(state_dir, *args)
    interrupt_midway(server, process, after_chunks=40, how=signal.SIGKILL)
    first_upload = saved_upload(state_dir)["dzuuid"]
    random_file(source, 64 * MiB)  # same size, other content, new mtime
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 1_000_000))

    result = run_cli(state_dir, *args)
    assert result.returncode == 0, result.stderr
    assert "changing.bin: starting over: it was modified since the interrupted upload" in (
        result.stderr
    )
    (record,) = json_lines(result.stdout)
    assert_stored_exactly(server, record, source)
    assert first_upload not in result.stdout


def test_upload_the_server_forgot_starts_over(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory()
    source = random_file(tmp_path / "forgotten.bin", 32 * MiB)
    args = ["upload", str(source), "--url", server.url, "--chunk-size", "256k", "--json"]
    process = start_cli(state_dir, *args)
    interrupt_midway(server, process, after_chunks=20, how=signal.SIGKILL)
    server.stop()
    for folder in (server.data_dir, server.chunks_dir):
        for path in folder.iterdir():
            path.unlink()
    server.start()

    result = run_cli(state_dir, *args)
    assert result.returncode == 0, result.stderr
    assert "starting over: the server no longer has the interrupted upload" in result.stderr
    assert_stored_exactly(server, json_lines(result.stdout)[0], source)
    assert server.health()["chunks_counted"] == 128


def test_refusal_is_reported_in_one_line_and_not_retried(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory("--max-size", "1")
    source = random_file(tmp_path / "too big.bin", 3 * MiB)
    started = time.monotonic()
    result = run_cli(state_dir, "upload", str(source), "--url", server.url, "--chunk-size", "1M")
    assert result.returncode == 1
    assert time.monotonic() - started < 20
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "413" in line and "too big.bin" in line
    assert "retrying" not in result.stderr
    assert server.health()["chunk_requests"] <= 4  # one per sender at most, none repeated
    assert server.stored_files() == []


def test_one_failed_file_does_not_stop_the_others(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path
) -> None:
    server = server_factory("--max-size", "1")
    small = random_file(tmp_path / "small.bin", 100_000)
    big = random_file(tmp_path / "big.bin", 2 * MiB)
    result = run_cli(state_dir, "upload", str(big), str(small), "--url", server.url, "--json")
    assert result.returncode == 1
    (record,) = json_lines(result.stdout)
    assert_stored_exactly(server, record, small)


def test_unreachable_server(tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "a.bin", 1000)
    result = run_cli(state_dir, "upload", str(source), "--url", "http://127.0.0.1:9")
    assert result.returncode == 1
    assert "cannot reach http://127.0.0.1:9" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a.bin", "--chunk-size", "8Mi"], "did you mean 8MiB"),
        (["a.bin", "--chunk-size", "0"], "more than 0 bytes"),
        (["a.bin", "--parallel", "0"], "from 1 to 64"),
        (["a.bin", "--url", "ftp://x"], "not an http(s) URL"),
        (["missing.bin", "a.bin"], "missing.bin: no such file"),
        (["."], ".: is not a regular file"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    random_file(tmp_path / "a.bin", 10)
    result = run_cli(
        tmp_path / "state", "upload", "--url", "http://127.0.0.1:9", *args,
        cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_identical_uploads_use_the_space_of_one(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "same.bin", 6 * MiB)
    copy = tmp_path / "copy" / "same.bin"
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    result = run_cli(state_dir, "upload", str(source), str(copy), "--url", server.url, "--json")
    assert result.returncode == 0, result.stderr
    first, second = json_lines(result.stdout)
    assert first["sha256"] == second["sha256"] and first["id"] != second["id"]
    stored_first, stored_second = server.path_of(first), server.path_of(second)
    assert stored_first != stored_second
    assert stored_first.stat().st_ino == stored_second.stat().st_ino


def test_works_against_a_plain_dropzone_server(tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "plain.bin", 5 * MiB + 3)
    folder = tmp_path / "received"
    folder.mkdir()
    with stub_server(folder) as url:
        result = run_cli(state_dir, "upload", str(source), "--url", url, "--chunk-size", "1M")
    assert result.returncode == 0, result.stderr
    assert "does not report a SHA-256; not verified" in result.stderr
    assert sha256_of(folder / "plain.bin") == sha256_of(source)


PEAK_RSS_REPORTER = (
    "import atexit, resource, sys\n"
    "atexit.register(lambda: print('peak-rss-kib', resource.getrusage(resource.RUSAGE_SELF)"
    ".ru_maxrss, file=sys.stderr))\n"
    "from pyfiledrop.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.slow
def test_memory_stays_bounded_when_the_whole_file_could_be_in_flight(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "wide.bin", 384 * MiB)
    try:
        result = subprocess.run(
            [sys.executable, "-c", PEAK_RSS_REPORTER, "upload", str(source), "--url", server.url,
             "--chunk-size", "64MiB", "--parallel", "6", "--json"],
            env=cli_env(state_dir), capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert_stored_exactly(server, json_lines(result.stdout)[0], source)
        peak_kib = int(result.stderr.rsplit("peak-rss-kib", 1)[1].split()[0])
        # The whole file in flight would be 384 MiB more than the ~45 MiB the client needs at
        # rest. Read-ahead is capped at 64 MiB; measured peaks are 70-105 MiB alone and up to
        # 302 MiB inside the full suite (malloc keeps freed pieces), so the bound sits between.
        assert peak_kib < 360 * 1024, f"peak {peak_kib} KiB"
    finally:
        source.unlink()
        for stored in server.stored_files():
            stored.unlink()


def test_wrong_password_stops_at_once_with_one_line(
    server_factory: ServerFactory, tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No "starting over", no retries, no second file: each try is one more wrong password."""
    from pyfiledrop.client import state as saved

    server = server_factory("--password", "the right one")
    files = [random_file(tmp_path / f"f{n}.bin", 2 * MiB) for n in range(3)]
    # An interrupted upload of the first file, as an earlier run with the password would leave.
    monkeypatch.setenv("PYFILEDROP_STATE_DIR", str(state_dir))
    identity = saved.FileIdentity.of(files[0].absolute())
    saved.save_upload(
        saved.UploadState(
            str(files[0].absolute()), server.url, str(uuid.uuid4()), MiB, identity, None
        )
    )
    result = run_cli(
        state_dir, "upload", *map(str, files), "--url", server.url,
        "--password", "wrong", "--chunk-size", "1MiB", "--retries", "5",
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "401" in lines[0] and "--password" in lines[0]
    assert saved.load_upload(files[0].absolute(), server.url) is not None  # still resumable
    assert server.stored_files() == []


def test_chunk_size_auto_is_chosen_per_file(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    """The default `--chunk-size auto`: a power of two per file from 8 MiB (keeping a file
    within 128 chunks where it can); `--chunk-size 1M` is still a fixed size."""
    small = random_file(tmp_path / "small.bin", 3 * MiB)
    fixed = random_file(tmp_path / "fixed.bin", 3 * MiB)
    for source, flags in ((small, []), (fixed, ["--chunk-size", "1M"])):
        result = run_cli(state_dir, "upload", str(source), "--url", server.url, *flags)
        assert result.returncode == 0, result.stderr
    with sqlite3.connect(server.data_dir / "pyfiledrop.sqlite3") as db:
        sizes = dict(db.execute("SELECT name, chunk_size FROM uploads").fetchall())
    assert sizes == {"small.bin": 8 * MiB, "fixed.bin": MiB}
    sparse = tmp_path / "sparse.bin"  # 2 GiB + 1 byte of zeros: no disk to make it
    with sparse.open("wb") as handle:
        handle.truncate(2 * 1024 * MiB + 1)
    process = start_cli(state_dir, "upload", str(sparse), "--url", server.url, "--json")
    try:
        wait_until(lambda: any(state_dir.glob("upload-*.json")), timeout=30)
        assert saved_upload(state_dir)["chunk_size"] == 32 * MiB
    finally:
        process.kill()
        process.wait(30)
        sparse.unlink()


def _serve_requests(conn: socket.socket, source: Path) -> None:
    """Dropzone's chunk POSTs, each answered {"ok": true} once read whole; the first one
    empties `source` (the file shrinks while it is being sent); a GET is a 404."""
    data = b""
    while True:
        while b"\r\n\r\n" not in data:
            piece = conn.recv(1 << 20)
            if not piece:
                return  # the client gave up on this connection
            data += piece
        head, _, data = data.partition(b"\r\n\r\n")
        if head.startswith(b"POST"):
            os.truncate(source, 0)
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
             if line.lower().startswith(b"content-length:")),
            0,
        )  # fmt: skip
        while len(data) < length:
            piece = conn.recv(1 << 20)
            if not piece:
                return
            data += piece
        data = data[length:]
        status, body = (200, b'{"ok": true}') if head.startswith(b"POST") else (404, b"{}")
        conn.sendall(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (status, len(body), body)
        )


def test_a_file_that_shrinks_while_it_is_sent_fails_in_one_line(
    tmp_path: Path, state_dir: Path
) -> None:
    source = random_file(tmp_path / "shrinks.bin", 8 * MiB)
    listener = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=_serve_requests, args=(conn, source), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    with listener:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        result = run_cli(
            state_dir, "upload", str(source), "--url", url, "--chunk-size", "1MiB", timeout=60
        )
    assert result.returncode == 1, result.stderr
    assert "shrinks.bin: the file shrank while uploading" in result.stderr
    assert "Traceback" not in result.stderr
