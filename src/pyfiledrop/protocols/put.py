"""Plain PUT: `curl -T big.iso http://host:16273/put/big.iso` streams the body into place."""

from __future__ import annotations

from contextlib import aclosing
from typing import Any

from starlette.requests import Request

from pyfiledrop.errors import Invalid
from pyfiledrop.lifecycle import file_options
from pyfiledrop.protocols.body import ChunkFeeder, body_pieces, declared_length, idle_timeout
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.records import uploader_record
from pyfiledrop.web.watch import note_upload


def wants_text(request: Request) -> bool:
    """`?text`, or an Accept naming text/plain but not JSON: answer with the bare link."""
    if "text" in request.query_params:
        return True
    accept = request.headers.get("accept", "")
    return "text/plain" in accept and "application/json" not in accept


async def receive(request: Request, uploads: Uploads, owner: str, name: str) -> dict[str, Any]:
    if not name.strip():
        raise Invalid("the URL must end with a file name: /put/<name>")
    size = declared_length(request)
    options = file_options(request.query_params)
    feeder = ChunkFeeder(await uploads.begin_stream(owner, name, size, options))
    note_upload(request.scope, feeder.plan.upload.id)
    try:
        async with aclosing(body_pieces(request, idle_timeout(uploads))) as pieces:
            async for piece in pieces:
                await feeder.feed(memoryview(piece))
        outcome = await feeder.finish(uploads)
    except BaseException:
        await feeder.abort(uploads)
        raise
    assert outcome.file is not None  # a stream is one chunk: counted means published
    return await uploader_record(uploads, outcome.file)
