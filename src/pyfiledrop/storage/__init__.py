"""The storage seam: where bytes go. The upload core decides; a storage only does I/O.

In the spirit of tusd's stores: a narrow `Storage` every backend implements (create a partial
upload, write a chunk at an offset from a stream, publish, discard, delete, exists, read a range,
list orphans), and small optional abilities (`PartialFiles`, `Concatenation`, `DuplicateLinking`,
`FreeSpace`, `PresignedUrls`, `SelfCheck`) a backend has or lacks. `capabilities` looks for them
once, when the core starts; the core, the guard and the web ask the `Capabilities` it returns.

A store is told what it needs of an upload (its `Shape`), so it never reads the core's books.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Buffer = bytes | memoryview
# Called with each batch in order, on an I/O thread, while or after it is written (hashing); a
# sink's finish returns only after the last call has.
OnWritten = Callable[[list[Buffer]], None]

# How an upload's bytes arrive: "parts" (chunk i at i * chunk_size, any order, each of known
# length), "one_shot" (one body in order from 0, its length maybe unknown: a PUT, or Dropzone
# without chunking), "offsets" (pieces of any length, in order, at the upload's offset: tus).
Kind = Literal["parts", "one_shot", "offsets"]


@dataclass(frozen=True)
class Shape:
    """What a store may know of an upload; the core passes it with every call that needs it."""

    id: str
    name: str
    size: int | None  # None: not known yet
    chunk_size: int
    kind: Kind


# The most chunks of one upload any store is asked to take (a store may take fewer: PartRules).
MAX_CHUNK_COUNT = 1_000_000


@dataclass(frozen=True)
class PartRules:
    """How a store takes an upload's chunks: data of the store, checked by the core."""

    min_bytes: int  # the smallest chunk but the last (S3's part minimum)
    max_count: int  # the most chunks of one upload
    any_offset: bool  # pieces of any length at any offset ("offsets", tus); else whole parts


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
    """What the core needs of every store."""

    parts: PartRules

    async def create_partial(self, upload: Shape) -> None:
        """Create an upload's partial (nothing allocated yet: see `open_chunk`). Idempotent."""
        ...

    async def open_chunk(
        self,
        upload: Shape,
        offset: int,
        on_written: OnWritten | None = None,
        length: int | None = None,
    ) -> ChunkSink:
        """A sink for bytes from `offset`; `length` (when known) is allocated first, so a full
        disk is reported (507) before the chunk's bytes are read. FileNotFoundError: the partial
        is gone."""
        ...

    async def publish(self, upload_id: str, name: str, taken: set[str]) -> str:
        """Give the finished partial its final, unique name (atomically); returns that path.

        The partial stays until `discard_partial`, which the core calls once the file is recorded:
        a crash in between must leave the bytes where a second attempt finds them.
        """
        ...

    async def discard_partial(self, upload_id: str) -> None: ...

    async def delete(self, path: str) -> None: ...

    async def exists(self, path: str) -> bool: ...

    def open_range(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes [start, end) of a published file."""
        ...

    async def orphan_partials(self, idle_since: float) -> list[str]:
        """Ids of partial uploads holding bytes, untouched since `idle_since` (rows may be gone)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PartialFiles(Protocol):
    """The partial is a file the core can read back while chunks arrive (so it hashes the file
    as it grows), cut to its size and flush before publishing. An object store's parts can't be
    read before completion: its file is hashed after `publish`."""

    async def hash_partial(self, upload_id: str, hasher: Any, start: int, end: int) -> None:
        """Feed bytes [start, end) of the partial upload to `hasher`."""
        ...

    async def truncate_partial(self, upload_id: str, size: int) -> None:
        """Make the partial exactly `size` bytes before it is hashed and published."""
        ...

    async def flush_partial(self, upload_id: str) -> None:
        """Force the partial file's bytes to stable storage."""
        ...


@runtime_checkable
class Concatenation(Protocol):
    async def join_partials(self, upload_id: str, parts: list[tuple[str, int]]) -> str:
        """Make an upload's partial the concatenation of other partials (their first `size`
        bytes each), without copying through the server where the storage can (tus final);
        returns how it was done, for the log."""
        ...


@runtime_checkable
class DuplicateLinking(Protocol):
    async def size_of(self, path: str) -> int | None:
        """The size of a published file as stored (None: it is not there)."""
        ...

    async def link_duplicate(
        self, upload_id: str, existing_path: str, name: str, taken: set[str]
    ) -> str | None:
        """Store the upload as a link to identical bytes already stored; None if not possible.

        As with `publish`, the partial stays until the core discards it.
        """
        ...


@runtime_checkable
class FreeSpace(Protocol):
    """A filesystem whose free space the guard keeps (see guard.py)."""

    def free_bytes(self) -> int: ...

    def unallocated(self, upload_id: str, size: int) -> int:
        """Bytes of an upload in progress (of `size`) its partial holds no blocks for yet."""
        ...


@runtime_checkable
class PresignedUrls(Protocol):
    def presigned_url(self, path: str, disposition: str) -> str:
        """A link, expiring, from which the store itself serves the file (and its ranges)."""
        ...


@runtime_checkable
class SelfCheck(Protocol):
    def writable(self) -> bool:
        """The store can take new bytes (for `/healthz`)."""
        ...


@dataclass(frozen=True)
class Capabilities:
    """What a store can do beyond `Storage`: None where it can't."""

    partial_files: PartialFiles | None
    concatenation: Concatenation | None
    duplicate_linking: DuplicateLinking | None
    free_space: FreeSpace | None
    presigned_urls: PresignedUrls | None
    self_check: SelfCheck | None


def capabilities(store: Storage) -> Capabilities:
    """The one place a store's abilities are looked for (when the core starts)."""
    return Capabilities(
        partial_files=store if isinstance(store, PartialFiles) else None,
        concatenation=store if isinstance(store, Concatenation) else None,
        duplicate_linking=store if isinstance(store, DuplicateLinking) else None,
        free_space=store if isinstance(store, FreeSpace) else None,
        presigned_urls=store if isinstance(store, PresignedUrls) else None,
        self_check=store if isinstance(store, SelfCheck) else None,
    )
