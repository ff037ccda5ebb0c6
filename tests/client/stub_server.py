"""A bare Dropzone-chunk server, like the ones pyfiledrop's uploader must also work against.

It keeps chunks in memory-free files, answers each chunk with plain JSON, and knows nothing of
`GET /upload/<id>`, `/finish`, owners or checksums: the article's original server in spirit.
"""

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def make_app(folder: Path) -> Starlette:
    async def upload(request: Request) -> JSONResponse:
        async with request.form(max_part_size=1 << 30) as form:
            part = form["file"]
            assert not isinstance(part, str)
            data = await part.read()
            dzuuid = str(form["dzuuid"])
            offset = int(str(form["dzchunkbyteoffset"]))
            total = int(str(form["dztotalfilesize"]))
            name = Path(str(part.filename)).name
        partial = folder / f"{dzuuid}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        received = folder / f"{dzuuid}.count"
        count = int(received.read_text()) + 1 if received.exists() else 1
        received.write_text(str(count))
        if count == int(str(form["dztotalchunkcount"])) and partial.stat().st_size == total:
            partial.rename(folder / name)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/upload", upload, methods=["POST"])])


@contextmanager
def running(folder: Path) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(make_app(folder), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
