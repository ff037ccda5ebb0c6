"""`/metrics`: scraped from a real server after uploads by three protocols and a refusal, and read
with prometheus-client's own parser (not by matching our text)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tusclient import client as tus

from tests.conftest import ServerFactory, random_file, sha256_of
from tests.dz import send_chunk, upload

KIB = 1024


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_dropzone_put_tus_a_refusal_and_a_download(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory("-a", "--metrics", "--max-size", "1")
    before = scrape(server.url)
    assert value(before, "pyfiledrop_uploads_in_progress") == 0
    assert value(before, "pyfiledrop_free_bytes") > 0

    dz_file = random_file(tmp_path / "dz.bin", 300 * KIB)
    put_file = random_file(tmp_path / "put.bin", 200 * KIB)
    tus_file = random_file(tmp_path / "tus.bin", 100 * KIB)
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        stored = upload(browser, dz_file, 128 * KIB)  # 3 chunks
        assert stored["sha256"] == sha256_of(dz_file)
        put = browser.put("/put/put.bin", content=put_file.read_bytes())
        assert put.status_code == 201
        too_big = {"dztotalfilesize": str(2 * 1024**2), "dztotalchunkcount": "16"}
        refused = send_chunk(browser, dz_file, str(uuid.uuid4()), 0, 128 * KIB, fields=too_big)
        assert refused.status_code == 413
        cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items())
        uploader = tus.TusClient(f"{server.url}/files/", headers={"Cookie": cookie}).uploader(
            str(tus_file), chunk_size=64 * KIB, metadata={"filename": "tus.bin"}
        )
        uploader.upload()
        got = browser.get(stored["url"])
        assert got.status_code == 200 and len(got.content) == dz_file.stat().st_size
        # An upload left half done is "in progress" until it is stored.
        upload(browser, dz_file, 128 * KIB, order=[0], finish=False)

    after = scrape(server.url)
    sizes = {p: p.stat().st_size for p in (dz_file, put_file, tus_file)}
    assert value(after, "pyfiledrop_chunk_requests_total", protocol="dropzone", outcome="ok") == 4
    assert value(after, "pyfiledrop_chunk_requests_total", protocol="put", outcome="ok") == 1
    assert (
        value(after, "pyfiledrop_chunk_requests_total", protocol="dropzone", outcome="refused") == 1
    )
    assert value(after, "pyfiledrop_chunk_requests_total", protocol="tus", outcome="ok") >= 2
    # Request bodies: Dropzone's include the multipart framing, so at least the file's bytes.
    dz_in = value(after, "pyfiledrop_received_bytes_total", protocol="dropzone")
    assert dz_in > sizes[dz_file] + 2 * 128 * KIB  # the half-done upload, the refused chunk
    assert value(after, "pyfiledrop_received_bytes_total", protocol="put") == sizes[put_file]
    assert value(after, "pyfiledrop_received_bytes_total", protocol="tus") == sizes[tus_file]
    assert value(after, "pyfiledrop_files_stored_total") == 3
    assert value(after, "pyfiledrop_stored_bytes_total") == sum(sizes.values())
    assert value(after, "pyfiledrop_refusals_total", status="413", code="too_large") == 1
    assert value(after, "pyfiledrop_finish_seconds_count") == 3
    assert value(after, "pyfiledrop_fsync_seconds_count") == 3
    assert value(after, "pyfiledrop_downloads_total") == 1
    assert value(after, "pyfiledrop_download_bytes_total") == sizes[dz_file]
    assert value(after, "pyfiledrop_janitor_runs_total", outcome="ok") >= 1
    assert value(after, "pyfiledrop_uploads_in_progress") == 1


def test_metrics_are_off_by_default_and_behind_the_password(
    server_factory: ServerFactory,
) -> None:
    plain = server_factory()
    assert httpx.get(f"{plain.url}/metrics", timeout=10).status_code == 404
    guarded = server_factory("--metrics", "--password", "s3cret-pass")
    assert httpx.get(f"{guarded.url}/metrics", timeout=10).status_code == 401
    samples = scrape(guarded.url, Authorization="Bearer s3cret-pass")
    # The refused scrape above counts, by its code.
    assert value(samples, "pyfiledrop_refusals_total", status="401", code="unauthorized") == 1


def test_bytes_show_while_an_upload_is_still_arriving(server_factory: ServerFactory) -> None:
    server = server_factory("--metrics")
    first_half = threading.Event()
    go_on = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"a" * (100 * KIB)
        first_half.set()
        assert go_on.wait(30)
        yield b"b" * (100 * KIB)

    results: list[int] = []

    def send() -> None:
        response = httpx.put(f"{server.url}/put/slow.bin", content=body(), timeout=60)
        results.append(response.status_code)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        assert first_half.wait(30)
        deadline = time.monotonic() + 10
        while True:  # the server reads the first piece soon after it is sent: poll, bounded
            now = scrape(server.url)
            got = value(now, "pyfiledrop_received_bytes_total", protocol="put")
            if got >= 100 * KIB or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert got == 100 * KIB
        assert value(now, "pyfiledrop_uploads_in_progress") == 1
        assert value(now, "pyfiledrop_files_stored_total") == 0
    finally:
        go_on.set()
        sender.join(60)
    assert results == [201]
    done = scrape(server.url)
    assert value(done, "pyfiledrop_received_bytes_total", protocol="put") == 200 * KIB
    assert value(done, "pyfiledrop_uploads_in_progress") == 0
