"""tuspy (the real tus client from PyPI) uploading a file, run by test_tus_clients.py as a process.

`python tuspy_client.py ENDPOINT FILE URL_STORE CHUNK_SIZE TRICKLE COOKIE CHECKSUM` uploads FILE in
CHUNK_SIZE PATCHes, resuming from the upload URL kept in URL_STORE (tuspy's own FileStorage) when
there is one. With TRICKLE > 0 each PATCH body goes out in 1 MiB pieces that far apart (so a test
can kill the client in the middle of a body). It prints one JSON line when it starts (`start`: the
offset it resumes from), one per chunk (`offset`), and the server's answer headers at the end
(`file`, `sha256`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from tusclient import client
from tusclient.storage.filestorage import FileStorage

PIECE = 1024 * 1024


def trickle(seconds: float) -> None:
    """Make tuspy's PATCH bodies arrive slowly (as a chunked stream of 1 MiB pieces)."""
    send = requests.patch

    def slow_patch(url: str, data: bytes, **kwargs: object) -> requests.Response:
        def pieces() -> Iterator[bytes]:
            for start in range(0, len(data), PIECE):
                yield data[start : start + PIECE]
                time.sleep(seconds)

        return send(url, data=pieces(), **kwargs)  # type: ignore[arg-type]

    requests.patch = slow_patch  # type: ignore[assignment]


def main() -> None:
    endpoint, path, store, chunk_size, slow, cookie, checksum = sys.argv[1:8]
    if float(slow) > 0:
        trickle(float(slow))
    tus = client.TusClient(endpoint, headers={"Cookie": cookie} if cookie else {})
    uploader = tus.uploader(
        path,
        chunk_size=int(chunk_size),
        metadata={"filename": Path(path).name},
        store_url=True,
        url_storage=FileStorage(store),
        upload_checksum=checksum == "1",
        retries=20,
        retry_delay=0.2,
    )
    print(json.dumps({"start": uploader.offset, "url": uploader.url}), flush=True)
    size = uploader.get_file_size()
    while uploader.offset < size:
        uploader.upload_chunk()
        print(json.dumps({"offset": uploader.offset, "url": uploader.url}), flush=True)
    headers = uploader.request.response_headers if uploader.request is not None else {}
    answer = {key.lower(): value for key, value in headers.items()}
    print(
        json.dumps(
            {"file": answer.get("x-pyfiledrop-file"), "sha256": answer.get("x-pyfiledrop-sha256")}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
