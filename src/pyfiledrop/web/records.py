"""The JSON clients read about files and uploads, built from the core's records at the edge.

Links here are relative (`/download/<id>`, `/f/<id>`); answers meant to be pasted (PUT's) make
them absolute where they are answered.
"""

from __future__ import annotations

from typing import Any

from pyfiledrop.meta import StoredFile
from pyfiledrop.units import format_time
from pyfiledrop.uploads import ChunkOutcome, Uploads, UploadState


def file_record(stored: StoredFile, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": stored.id,
        "name": stored.name,
        "size": stored.size,
        "sha256": stored.sha256,
        "url": f"/download/{stored.id}",
        "page_url": f"/f/{stored.id}",  # the recipient page (web/shares.py)
        "created": format_time(stored.created),
        "expires": format_time(stored.expires) if stored.expires is not None else None,
        "downloads": stored.downloads,
        "max_downloads": stored.max_downloads,
    }
    if stored.content_type:
        record["type"] = stored.content_type
    record.update(extra)
    return record


async def uploader_record(uploads: Uploads, stored: StoredFile) -> dict[str, Any]:
    """The file record for its uploader, when the upload finishes: with the delete token."""
    return file_record(stored, delete_token=await uploads.delete_token(stored.id))


async def chunk_answer(uploads: Uploads, outcome: ChunkOutcome) -> dict[str, Any]:
    if outcome.file is not None:
        return {"status": outcome.status, "file": await uploader_record(uploads, outcome.file)}
    if outcome.offset is not None:
        return {"status": outcome.status, "offset": outcome.offset}
    if outcome.received_count is not None:
        return {
            "status": outcome.status,
            "received": outcome.received_count,
            "total": outcome.total,
        }
    return {"status": outcome.status, "total": outcome.total}


async def upload_state(uploads: Uploads, state: UploadState) -> dict[str, Any]:
    upload = state.upload
    answer: dict[str, Any] = {
        "id": upload.id,
        "name": upload.name,
        "size": upload.size,
        "chunk_size": upload.chunk_size,
        "chunk_count": upload.chunk_count,
        "state": upload.state,
        "received": state.received,
    }
    if state.file is not None:
        answer["file"] = await uploader_record(uploads, state.file)
    return answer
