"""The storage seam: where bytes go. The upload core decides; a storage only does I/O.

In the spirit of tusd's stores: create a partial upload, write a chunk at an offset from a stream,
read back, publish under a name, delete. Local disk implements it in `local.py`; an object store
fits the same shape (a chunk = a multipart part, publish = complete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

Buffer = bytes | memoryview
# Called with each batch in order, on an I/O thread, while or after it is written (hashing); a
# sink's finish returns only after the last call has.
OnWritten = Callable[[list[Buffer]], None]


class ChunkSink(Protocol):
    """Receives one chunk's bytes in order; nothing counts until `finish` returns."""

    async def write(self, data: Buffer) -> None: ...

    async def finish(self) -> int:
        """Make every byte written durable enough to count; returns the bytes written."""
        ...

    async def abort(self) -> None:
        """Stop after an error or a cut connection; the bytes written may stay but don't count."""
        ...


class Storage(Protocol):
    # Local disk can read a partial file back, so the core hashes it as chunks arrive; an object
    # store can't read parts before completion, so its file is hashed after `publish`.
    hashes_partials: bool
    min_chunk_size: int  # smallest chunk (but the last) the store accepts: S3's part minimum
    max_chunk_count: int

    async def create_partial(self, upload_id: str, size: int | None) -> None:
        """Create an upload's partial (nothing allocated yet: see `open_chunk`). Idempotent."""
        ...

    async def open_chunk(
        self,
        upload_id: str,
        offset: int,
        on_written: OnWritten | None = None,
        length: int | None = None,
    ) -> ChunkSink:
        """A sink for bytes from `offset`; `length` (when known) is allocated first, so a full
        disk is reported (507) before the chunk's bytes are read."""
        ...

    async def truncate_partial(self, upload_id: str, size: int) -> None:
        """Make the partial exactly `size` bytes before it is hashed and published."""
        ...

    async def size_of(self, path: str) -> int | None:
        """The size of a published file as stored (None: it is not there)."""
        ...

    async def join_partials(self, upload_id: str, parts: list[tuple[str, int]]) -> str:
        """Make an upload's partial the concatenation of other partials (their first `size`
        bytes each), without copying through the server where the storage can (tus final)."""
        ...

    async def hash_partial(self, upload_id: str, hasher: Any, start: int, end: int) -> None:
        """Feed bytes [start, end) of the partial upload to `hasher` (when `hashes_partials`)."""
        ...

    async def sha256_of(self, path: str) -> str:
        """The SHA-256 of a published file, read back."""
        ...

    async def orphan_partials(self, idle_since: float) -> list[str]:
        """Ids of partial uploads holding bytes, untouched since `idle_since` (rows may be gone)."""
        ...

    async def flush_partial(self, upload_id: str) -> None:
        """Force the partial file's bytes to stable storage."""
        ...

    async def publish(self, upload_id: str, name: str, taken: set[str]) -> str:
        """Give the finished partial its final, unique name (atomically); returns that path.

        The partial stays until `discard_partial`, which the core calls once the file is recorded:
        a crash in between must leave the bytes where a second attempt finds them.
        """
        ...

    async def link_duplicate(
        self, upload_id: str, existing_path: str, name: str, taken: set[str]
    ) -> str | None:
        """Store the upload as a link to identical bytes already stored; None if not possible.

        As with `publish`, the partial stays until the core discards it.
        """
        ...

    async def discard_partial(self, upload_id: str) -> None: ...

    async def delete(self, path: str) -> None: ...

    async def exists(self, path: str) -> bool: ...

    def open_range(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a published file."""
        ...

    def close(self) -> None: ...
