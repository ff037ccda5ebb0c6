"""Uploads in progress, as the operator's `files list --in-progress` and `/metrics` see them."""

from __future__ import annotations

from pyfiledrop.meta import ONE_SHOT_BODY, TUS_OFFSETS, Database, Upload, queries


async def uploads_in_progress(db: Database) -> list[Upload]:
    """Every upload not yet published (receiving or finalizing), in no particular order."""
    return await db.run(queries.receiving_uploads)


async def received_bytes(db: Database, upload: Upload) -> int | None:
    """What the books know has arrived; None for a one-shot stream (counted only in memory)."""
    if upload.protocol == ONE_SHOT_BODY:
        return None
    if upload.protocol == TUS_OFFSETS:
        return upload.byte_offset  # received in order: the offset is the count
    size = upload.size or 0
    return sum(
        max(0, min(upload.chunk_size, size - index * upload.chunk_size))
        for index in await db.run(queries.received_chunks, upload.id)
    )
