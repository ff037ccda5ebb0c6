"""A minimal Dropzone-protocol sender for tests (the real uploader lives in pyfiledrop.client)."""

from __future__ import annotations

import math
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

DZ_FIELD_NAMES = [
    "dzuuid",
    "dzchunkindex",
    "dztotalfilesize",
    "dzchunksize",
    "dztotalchunkcount",
    "dzchunkbyteoffset",
]


def chunk_fields(upload_id: str, index: int, chunk_size: int, total: int) -> dict[str, str]:
    return {
        "dzuuid": upload_id,
        "dzchunkindex": str(index),
        "dztotalfilesize": str(total),
        "dzchunksize": str(chunk_size),
        "dztotalchunkcount": str(max(1, math.ceil(total / chunk_size))),
        "dzchunkbyteoffset": str(index * chunk_size),
    }


def read_chunk(path: Path, index: int, chunk_size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(index * chunk_size)
        return handle.read(chunk_size)


def send_chunk(
    client: httpx.Client,
    path: Path,
    upload_id: str,
    index: int,
    chunk_size: int,
    name: str | None = None,
    fields: dict[str, str] | None = None,
) -> httpx.Response:
    total = path.stat().st_size
    data = chunk_fields(upload_id, index, chunk_size, total)
    data.update(fields or {})
    body = read_chunk(path, index, chunk_size)
    files = {"file": (name or path.name, body, "application/octet-stream")}
    return client.post("/upload", data=data, files=files)


def race_last_chunk_with_finishes(
    client: httpx.Client, path: Path, upload_id: str, last: int, chunk_size: int, finishes: int = 3
) -> list[httpx.Response]:
    """Send chunk `last` while `finishes` threads ask to finish the upload, all at once; the
    responses in the order they came back."""
    results: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda: results.append(send_chunk(client, path, upload_id, last, chunk_size))
        ),
        *[
            threading.Thread(
                target=lambda: results.append(client.post(f"/upload/{upload_id}/finish"))
            )
            for _ in range(finishes)
        ],
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def upload(
    client: httpx.Client,
    path: Path,
    chunk_size: int,
    order: list[int] | None = None,
    in_flight: int = 4,
    upload_id: str | None = None,
    finish: bool = True,
    retries: int = 0,
) -> dict[str, Any]:
    """Send the chunks in `order` (default: in order) with `in_flight` at once, then finish.

    `retries`: resend a chunk answered with a 5xx, as Dropzone (retryChunks) and the CLI do."""
    upload_id = upload_id or str(uuid.uuid4())
    if "pfd_owner" not in client.cookies:
        client.get("/healthz")  # the owner cookie, before parallel chunks each get a new one
    count = max(1, math.ceil(path.stat().st_size / chunk_size))
    order = list(range(count)) if order is None else order

    def send(index: int) -> httpx.Response:
        response = send_chunk(client, path, upload_id, index, chunk_size)
        for _ in range(retries):
            if response.status_code < 500:
                break
            response = send_chunk(client, path, upload_id, index, chunk_size)
        return response

    with ThreadPoolExecutor(in_flight) as pool:
        responses = list(pool.map(send, order))
    for response in responses:
        assert response.status_code == 200, response.text
    if not finish:
        return {"id": upload_id}
    result = client.post(f"/upload/{upload_id}/finish")
    assert result.status_code == 200, result.text
    file: dict[str, Any] = result.json()["file"]
    return file
