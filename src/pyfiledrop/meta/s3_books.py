"""The S3 storage's multipart books (its port `storage.s3.MultipartBooks`) kept in the database.

The composition root hands one to the S3 storage, which so never runs SQL nor reads the core's
books itself; the statements are in `s3_parts`.
"""

from __future__ import annotations

import time

from pyfiledrop.meta import Database
from pyfiledrop.meta.s3_parts import (
    add_multipart,
    forget_multipart,
    is_finishing,
    parts_of,
    record_part,
    recorded_multipart,
)


class DatabaseParts:
    """Each call one short statement (or transaction) of `s3_parts`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def multipart(self, upload_id: str) -> tuple[str, str] | None:
        return await self.db.run(recorded_multipart, upload_id)

    async def add_multipart(self, upload_id: str, s3_upload_id: str, key: str) -> str:
        return await self.db.run(add_multipart, upload_id, s3_upload_id, key, time.time())

    async def record_part(self, upload_id: str, number: int, etag: str, size: int) -> None:
        await self.db.run(record_part, upload_id, number, etag, size)

    async def parts(self, upload_id: str) -> list[tuple[int, str, int]]:
        return await self.db.run(parts_of, upload_id)

    async def forget(self, upload_id: str) -> None:
        await self.db.run(forget_multipart, upload_id)

    async def finishing(self, upload_id: str) -> bool:
        return await self.db.run(is_finishing, upload_id)
