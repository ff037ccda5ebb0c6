"""At most one writer per chunk, over real sockets: a second copy of a chunk that is being written
never writes into the partial, so a published file's bytes always hash to its recorded SHA-256
(issue 12, finding 1), and deduplication can't be poisoned."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.client.helpers import json_lines, run_cli
from tests.conftest import Server
from tests.dz import chunk_fields

MiB = 1024 * 1024
BOUNDARY = "singlewriterboundary"
WAIT_SECONDS = 30.0


class HeldChunk:
    """A Dropzone chunk sent over a raw socket up to `held` bytes of its file part, then held."""

    def __init__(
        self, server: Server, cookie: str, fields: dict[str, str], data: bytes, held: int
    ) -> None:
        head = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ) + (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            'filename="payload.bin"\r\n\r\n'
        )
        tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.rest = data[held:] + tail
        self.socket = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS)
        self.socket.sendall(
            (
                f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: pfd_owner={cookie}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {len(head) + len(data) + len(tail)}\r\n\r\n"
            ).encode()
            + head.encode()
            + data[:held]
        )

    def finish(self) -> tuple[int, dict[str, Any]]:
        self.socket.sendall(self.rest)
        response = http.client.HTTPResponse(self.socket)
        response.begin()
        body = response.read()
        self.socket.close()
        return response.status, json.loads(body)


@contextlib.contextmanager
def owner_client(server: Server) -> Iterator[httpx.Client]:
    """A client with its own owner cookie (another browser)."""
    with httpx.Client(base_url=server.url, timeout=WAIT_SECONDS) as client:
        client.get("/healthz")
        yield client


def wait_for_chunk_requests(server: Server, count: int) -> None:
    """Until the server has begun `count` chunks (a bounded poll: the server is another process)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while server.health()["chunk_requests"] < count:
        assert time.monotonic() < deadline, "the server never began the chunk"
        time.sleep(0.02)


def post_chunk(
    client: httpx.Client, upload_id: str, index: int, chunk_size: int, total: int, data: bytes
) -> httpx.Response:
    return client.post(
        "/upload",
        data=chunk_fields(upload_id, index, chunk_size, total),
        files={"file": ("payload.bin", data, "application/octet-stream")},
    )


def in_thread(call: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(call()))
    thread.start()
    return thread, answers


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("first_to_finish", ["held copy", "other copy"])
def test_racing_duplicate_with_other_bytes(server: Server, first_to_finish: str) -> None:
    """Copy A of chunk 0 is held mid-body; copy B (other bytes) is sent whole. Whichever finishes
    first, the published file's bytes hash to its recorded SHA-256, and are one copy's bytes."""
    real = os.urandom(2 * MiB)
    other = os.urandom(MiB)
    upload_id = str(uuid.uuid4())
    with owner_client(server) as client:
        fields = chunk_fields(upload_id, 0, MiB, len(real))
        held = HeldChunk(server, client.cookies["pfd_owner"], fields, real[:MiB], MiB // 2)
        wait_for_chunk_requests(server, 1)
        thread, answers = in_thread(lambda: post_chunk(client, upload_id, 0, MiB, len(real), other))
        wait_for_chunk_requests(server, 2)
        if first_to_finish == "other copy":
            thread.join(WAIT_SECONDS)
            assert not thread.is_alive()
            status, _ = held.finish()
        else:
            status, _ = held.finish()
            thread.join(WAIT_SECONDS)
        assert status == 200
        other_answer = answers[0]
        if other_answer.status_code == 503:  # it found the chunk being written: send it again
            assert other_answer.headers["Retry-After"] == "1"
        else:
            assert other_answer.status_code == 200
        last = post_chunk(client, upload_id, 1, MiB, len(real), real[MiB:])
        assert last.status_code == 200, last.text
        record = last.json()["file"]
        published = client.get(record["url"]).content
    assert sha256(published) == record["sha256"]
    # The held copy came first, so it is the chunk's one writer; the other copy wrote nothing.
    assert published == real
    if first_to_finish == "held copy":
        assert other_answer.json()["status"] == "duplicate"  # it waited for the held copy
    else:
        assert other_answer.status_code == 503


@pytest.mark.parametrize("victim_uses", ["PUT", "pyfiledrop upload"])
def test_dedup_poisoning_with_a_racing_duplicate(
    server: Server, tmp_path: Path, victim_uses: str
) -> None:
    """The attack of finding 1: an attacker who knows the SHA-256 of a file someone will upload
    races two copies of its one chunk (poison held, real bytes whole) to get a file recorded with
    the real hash over poisoned bytes; the victim's upload of the real bytes must still serve the
    real bytes (not be deduplicated onto the poison)."""
    real = os.urandom(MiB)
    poison = os.urandom(MiB)
    upload_id = str(uuid.uuid4())
    with owner_client(server) as attacker:
        fields = chunk_fields(upload_id, 0, MiB, MiB)
        held = HeldChunk(server, attacker.cookies["pfd_owner"], fields, poison, MiB // 2)
        wait_for_chunk_requests(server, 1)
        thread, answers = in_thread(lambda: post_chunk(attacker, upload_id, 0, MiB, MiB, real))
        wait_for_chunk_requests(server, 2)
        held.finish()
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
        assert answers[0].status_code in (200, 503)  # counted meanwhile, or "send it again"
        record = attacker.post(f"/upload/{upload_id}/finish").json()["file"]
        attacker_bytes = attacker.get(record["url"]).content
    if victim_uses == "PUT":
        with owner_client(server) as victim:
            answer = victim.put("/put/release.bin", content=real)
            assert answer.status_code == 201, answer.text
            mine = answer.json()
    else:
        release = tmp_path / "release.bin"
        release.write_bytes(real)
        result = run_cli(tmp_path / "state", "upload", str(release), "--url", server.url, "--json")
        assert result.returncode == 0, result.stderr
        [mine] = json_lines(result.stdout)
    assert mine["sha256"] == sha256(real)
    link = str(mine["url"])
    link = link if link.startswith("http") else server.url + link  # the CLI prints full links
    downloaded = httpx.get(link, timeout=WAIT_SECONDS).content
    assert downloaded == real
    assert sha256(attacker_bytes) == record["sha256"]
