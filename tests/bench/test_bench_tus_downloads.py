"""The tus pair, the download rows and what a trial measures of its client (tiny files only)."""

import json
import os
import shutil
import sys
from pathlib import Path

import bench.downloads as downloads
import bench.tus as tus
import pytest
from bench.__main__ import uses_uploader
from bench.measure import run_trial, sha256_of
from bench.systems import FULL, NGINX, QUICK, Server, Setting, Trial, missing_tools
from bench.units import MIB


def small_file(path: Path, size: int = MIB) -> tuple[Path, str]:
    path.write_bytes(os.urandom(size))
    return path, sha256_of(path)


def test_quick_keeps_the_targets_rows_and_drops_the_references() -> None:
    assert [s.key for s in tus.peer_settings()] == ["@tus/server | tus-js-client 8MiB"]
    assert [s.key for s in tus.pyfiledrop_settings(QUICK)] == [
        "pyfiledrop tus (no flush) | tus-js-client 8MiB"
    ]
    assert [s.key for s in tus.pyfiledrop_settings(FULL)] == [
        "pyfiledrop tus (no flush) | tus-js-client 8MiB",
        "pyfiledrop tus (flush) | tus-js-client 8MiB",
    ]
    assert downloads.reference_settings(QUICK) == []
    assert [s.key for s in downloads.reference_settings(FULL)] == [
        "curl download from nginx | curl -o"
    ]
    assert [s.key for s in downloads.pyfiledrop_settings()] == [
        "pyfiledrop download | CLI defaults",
        "pyfiledrop download --no-flush | verifies, no flush",
        "curl download from pyfiledrop | curl -o",
    ]


def test_the_tus_client_and_peer_commands(tmp_path: Path) -> None:
    trial = Trial(tmp_path / "f.bin", tmp_path, 8081)
    client = tus.tus_js_client(trial)
    assert client[:3] == ["node", str(tus.TUS_UPLOAD), "http://127.0.0.1:8081/files/"]
    assert client[3:] == [str(trial.source), str(8 * MIB)]
    assert tus.TUS_NODE.command(trial) == ["node", str(tus.TUS_SERVER), "8081", str(trial.storage)]
    lacking = Setting("t", "l", False, None, tus.tus_js_client, needs=("/nonexistent/tus",))
    assert missing_tools([lacking]) == {"t": "/nonexistent/tus not found"}


def test_the_tus_peers_file_is_found_by_the_upload_id(tmp_path: Path) -> None:
    trial = Trial(tmp_path / "f.bin", tmp_path, 8081)
    assert tus.stored_by_upload_id(trial) is None  # the client printed nothing
    (tmp_path / "client.out").write_text("not json")
    assert tus.stored_by_upload_id(trial) is None
    url = "http://127.0.0.1:8081/files/0a1b2c"
    (tmp_path / "client.out").write_text(json.dumps({"url": url, "size": 3}) + "\n")
    assert tus.stored_by_upload_id(trial) is None  # not stored
    trial.storage.mkdir()
    (trial.storage / "0a1b2c").write_bytes(b"abc")
    assert tus.stored_by_upload_id(trial) == trial.storage / "0a1b2c"


def test_download_clients_fetch_the_seeded_url_into_the_trials_folder(tmp_path: Path) -> None:
    trial = Trial(tmp_path / "f.bin", tmp_path, 8081, fetch_url="http://127.0.0.1:8081/download/x")
    pyfiledrop, no_flush, curl = downloads.pyfiledrop_settings()
    assert pyfiledrop.client(trial)[1:3] == ["download", trial.fetch_url]
    assert pyfiledrop.client(trial)[-3:] == ["-o", str(tmp_path / "download" / "f.bin"), "--json"]
    assert no_flush.client(trial) == [*pyfiledrop.client(trial), "--no-flush"]
    assert (pyfiledrop.flush, no_flush.flush) == (True, False)
    assert no_flush.seed is pyfiledrop.seed and no_flush.output is pyfiledrop.output
    assert curl.client(trial) == ["curl", "-sS", "--fail", "-o", str(downloads.target(trial)),
                                  trial.fetch_url]  # fmt: skip
    assert [uses_uploader(s) for s in (pyfiledrop, no_flush, curl)] == [True, True, False]
    assert "--allow-downloads" in pyfiledrop.server.command(trial) if pyfiledrop.server else False


def test_nginx_is_seeded_with_a_link_to_the_source(tmp_path: Path) -> None:
    source, _ = small_file(tmp_path / "f.bin", 1000)
    trial = Trial(source, tmp_path / "w", 8081)
    trial.storage.mkdir(parents=True)
    assert downloads.seed_nginx(trial) == "http://127.0.0.1:8081/f.bin"
    assert (trial.storage / "f.bin").read_bytes() == source.read_bytes()
    assert (tmp_path / "w" / "download").is_dir()
    (setting,) = downloads.reference_settings(FULL)
    assert setting.server is NGINX and setting.seed is downloads.seed_nginx


def _static_server(trial: Trial) -> list[str]:
    return [
        *(sys.executable, "-m", "http.server", str(trial.port)),
        *("--bind", "127.0.0.1", "--directory", str(trial.storage)),
    ]


STATIC = Server("http.server", _static_server)


def _seed_copy(trial: Trial) -> str:
    downloads.seed_nginx(trial)
    return f"{trial.url}/{trial.source.name}"


def test_a_seeded_trial_hashes_the_clients_copy_and_times_the_client(tmp_path: Path) -> None:
    source, sha = small_file(tmp_path / "f.bin")
    setting = Setting(
        "static GET", "curl -o", False, STATIC, downloads.curl_download, _seed_copy,
        downloads.downloaded,
    )  # fmt: skip
    result = run_trial(setting, source, sha, tmp_path / "w", 0, tmp_path / "logs")
    assert result.error is None and result.sha_ok
    assert result.mb_per_s > 0 and result.client_cpu_seconds is not None
    assert not (tmp_path / "w").exists()


def test_a_failed_seeding_is_the_runs_error_and_stops_the_server(tmp_path: Path) -> None:
    source, sha = small_file(tmp_path / "f.bin")

    def broken_seed(trial: Trial) -> str:
        raise OSError("no room")

    setting = Setting("static GET", "curl -o", False, STATIC, downloads.curl_download,
                      broken_seed, downloads.downloaded)  # fmt: skip
    result = run_trial(setting, source, sha, tmp_path / "w", 0, tmp_path / "logs")
    assert result.error == "seeding failed: no room"
    assert not result.sha_ok and result.mb_per_s == 0.0
    assert (tmp_path / "logs" / "w-server.log").exists()


def test_a_client_that_writes_elsewhere_is_not_counted_as_stored(tmp_path: Path) -> None:
    source, sha = small_file(tmp_path / "f.bin")
    setting = Setting("static GET", "curl -o", False, STATIC,
                      lambda trial: ["curl", "-sS", "--fail", "-o", "/dev/null", trial.fetch_url],
                      _seed_copy, downloads.downloaded)  # fmt: skip
    result = run_trial(setting, source, sha, tmp_path / "w", 0, tmp_path / "logs")
    assert result.error == "stored file missing" and result.mb_per_s == 0.0


NODE_READY = shutil.which("node") is not None and not missing_tools(tus.peer_settings())


@pytest.mark.skipif(not NODE_READY, reason="node or the pinned npm packages are missing")
def test_tus_js_client_into_the_tus_projects_server(tmp_path: Path) -> None:
    source, sha = small_file(tmp_path / "f.bin", 3 * MIB)
    (setting,) = tus.peer_settings()
    result = run_trial(setting, source, sha, tmp_path / "w", 0, tmp_path / "logs")
    assert result.error is None and result.sha_ok
    assert result.client_cpu_seconds is not None and result.client_cpu_seconds > 0


def test_the_time_estimate_counts_the_seeding_upload_of_download_rows() -> None:
    from bench.__main__ import estimate_seconds

    plain = tus.peer_settings()
    seeded = downloads.pyfiledrop_settings()[:1]
    size = 250_000_000  # 1 s at the estimate's 250 MB/s
    assert estimate_seconds(seeded, size, 2) == pytest.approx(estimate_seconds(plain, size, 2) + 2)
