"""S3-compatible object storage (AWS, MinIO, R2, Ceph) with boto3: a chunk is a multipart part.

Chunk i of an upload is part i + 1 of one S3 multipart upload, created by whichever process sees
the upload's first chunk (the database decides which multipart upload wins a race; a loser is
aborted at once). A chunk's bytes stream to S3 as they arrive: the event loop hands batches of
about 1 MiB to a thread that sends the part with its known Content-Length, with at most
`QUEUE_BATCHES` waiting, so memory per request stays bounded. The part's MD5 is computed on the way
and compared with the ETag S3 answers; only then is the part recorded and the chunk counted.
Publishing completes the multipart upload from the recorded parts; the whole file's SHA-256 is then
read back from the object (SHA-256 can't combine parts that arrive out of order on several
processes). One-shot uploads of unknown size are cut into parts of `STREAM_PART_BYTES` (larger when
`--max-size` needs it to stay within S3's 10,000 parts).

Objects are `<prefix>/<upload id>/<name>`: unique by construction, so no name can be overwritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import queue
import re
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pyfiledrop.config import S3_MIN_PART_BYTES, ConfigError, S3Location, Settings
from pyfiledrop.errors import NotSupportedByStorage, Unavailable, UploadDiscarded
from pyfiledrop.storage import Buffer, OnWritten, PartRules, Shape

T = TypeVar("T")

MAX_PARTS = 10_000  # S3's limit per multipart upload
BATCH_BYTES = 1024 * 1024
QUEUE_BATCHES = 2
STREAM_PART_BYTES = 8 * 1024 * 1024
READ_BYTES = 1024 * 1024
PART_THREADS = 64  # one per chunk being received
CONTROL_THREADS = 8  # everything else: create, complete, head, downloads, read-back
STALL_SECONDS = 600.0  # a part's thread gives up if the request feeds it nothing this long
PRESIGN_SECONDS = 3600
_MD5_ETAG = re.compile(r"^[0-9a-f]{32}$")
_END = b""


class MultipartBooks(Protocol):
    """The port where this store keeps its multipart uploads (given by the composition root:
    `meta.s3_books.DatabaseParts`), so that every process sees the same ones."""

    async def multipart(self, upload_id: str) -> tuple[str, str] | None:
        """(S3's upload id, object key) of the upload's multipart upload, if one is recorded."""
        ...

    async def add_multipart(self, upload_id: str, s3_upload_id: str, key: str) -> str:
        """Record a new multipart upload unless another process did first; the winner's id."""
        ...

    async def record_part(self, upload_id: str, number: int, etag: str, size: int) -> None:
        """Record (or replace) an acknowledged part, unless its multipart upload is forgotten."""
        ...

    async def parts(self, upload_id: str) -> list[tuple[int, str, int]]:
        """(number, ETag, size) of the recorded parts, by number."""
        ...

    async def forget(self, upload_id: str) -> None: ...

    async def finishing(self, upload_id: str) -> bool:
        """The core's finisher has begun (or done) completing the upload: a part refused now
        was a duplicate."""
        ...


class StorageError(Unavailable):
    """The object store failed or disagreed; the client may send the chunk again."""


class _Aborted(Exception):
    """The request stopped feeding a part; its upload_part call must fail, not complete."""


def _error_code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def make_client(settings: Settings) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise StorageError("S3 storage needs boto3: pip install 'pyfiledrop[s3]'") from None
    config = Config(
        max_pool_connections=PART_THREADS + CONTROL_THREADS,
        # Parts are streamed, so their SHA-256 can't be known before sending: sign the headers
        # only (AWS does this over HTTPS anyway); integrity is checked by the part's MD5 instead.
        s3={
            "payload_signing_enabled": False,
            "addressing_style": "path" if settings.s3_endpoint else "auto",
        },
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        signature_version="s3v4",
        retries={"max_attempts": 3, "mode": "standard"},
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        config=config,
    )


def check_reachable(settings: Settings) -> None:
    """At start: the bucket answers with these credentials; else one clear line, by setting."""
    assert isinstance(settings.storage, S3Location)
    try:
        client = make_client(settings)
        client.head_bucket(Bucket=settings.storage.bucket)
    except StorageError as error:
        raise ConfigError(f"--storage {settings.storage}: {error.message}") from None
    except Exception as error:
        where = settings.s3_endpoint or "AWS"
        raise ConfigError(
            f"--storage {settings.storage}: the bucket can't be reached at {where} ({error})"
        ) from None


class _PartBatches:
    """One S3 part's batches, from the event loop to the thread uploading the part; the loop waits
    (without blocking) when it is full."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.Queue[list[Buffer] | BaseException | bytes] = queue.Queue()
        self._slots = asyncio.Semaphore(QUEUE_BATCHES)

    async def put(self, batch: list[Buffer]) -> None:
        await self._slots.acquire()
        self._queue.put_nowait(batch)

    def close(self, reason: BaseException | None = None) -> None:
        self._queue.put_nowait(reason if reason is not None else _END)

    def unblock(self) -> None:
        """The thread is gone (done or failed): nobody will take batches, so never wait for room."""
        for _ in range(QUEUE_BATCHES + 1):
            self._slots.release()

    def get(self) -> list[Buffer] | None:
        """In the thread: the next batch, None at the end; raises if the request gave up."""
        try:
            item = self._queue.get(timeout=STALL_SECONDS)
        except queue.Empty:
            raise _Aborted("the request stopped sending") from None
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, bytes):
            return None
        self._loop.call_soon_threadsafe(self._slots.release)
        return item


class _PartBody:
    """A file-like body for upload_part: reads from `_PartBatches`, hashes what it hands out."""

    def __init__(self, feed: _PartBatches, length: int) -> None:
        self._feed = feed
        self._pieces: list[Buffer] = []
        self._current = memoryview(b"")
        self.remaining = length
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sent = 0

    def read(self, size: int = -1) -> bytes | memoryview:
        while not self._current:
            if not self._pieces:
                batch = self._feed.get()
                if batch is None:
                    return b""
                self._pieces = batch
            self._current = memoryview(self._pieces.pop(0)).cast("B")
        if size is None or size < 0:
            size = len(self._current)
        piece = self._current[:size]
        self._current = self._current[len(piece) :]
        self.md5.update(piece)
        self.sent += len(piece)
        return piece


def _check_etag(etag: str, md5: str) -> None:
    """S3 (without SSE-KMS) answers a part's MD5 as its ETag: a mismatch means damaged bytes."""
    plain = etag.strip('"').lower()
    if _MD5_ETAG.match(plain) and plain != md5:
        raise StorageError("the object store received different bytes; send the chunk again")


class S3PartSink:
    """One chunk streamed as one part, in a thread, while the event loop parses the request."""

    def __init__(
        self, storage: S3Storage, upload_id: str, s3_upload_id: str, key: str, number: int,
        length: int,
    ) -> None:  # fmt: skip
        self._storage = storage
        self._upload_id = upload_id
        self._number = number
        self._length = length
        loop = asyncio.get_running_loop()
        self._feed = _PartBatches(loop)
        self._batch: list[Buffer] = []
        self._batched = 0
        self._written = 0
        self._body = _PartBody(self._feed, length)
        self._late = False  # the upload was completed while this (duplicate) chunk streamed
        self._sending = loop.run_in_executor(
            storage.executor, self._send, s3_upload_id, key, number, length
        )
        self._sending.add_done_callback(lambda _: self._feed.unblock())

    def _send(self, s3_upload_id: str, key: str, number: int, length: int) -> str:
        answer = self._storage.client.upload_part(
            Bucket=self._storage.bucket, Key=key, UploadId=s3_upload_id, PartNumber=number,
            Body=self._body, ContentLength=length,
        )  # fmt: skip
        if self._body.sent != length:
            raise StorageError("the chunk ended before its length")
        etag = str(answer["ETag"])
        _check_etag(etag, self._body.md5.hexdigest())
        return etag

    async def write(self, data: Buffer) -> None:
        self._batch.append(data)
        self._batched += len(data)
        if self._batched >= BATCH_BYTES:
            await self._submit()

    async def _submit(self) -> None:
        if self._batch:
            batch, size = self._batch, self._batched
            self._batch, self._batched = [], 0
            if not self._late:  # a late duplicate's bytes are read and dropped
                await self._feed.put(batch)
            self._written += size
        if not self._late and self._sending.done():
            await self._outcome()  # the part failed early (the store broke off): say so now

    async def _outcome(self) -> str | None:
        """The part's ETag; None if the upload was completed meanwhile (this was a duplicate)."""
        try:
            return await self._sending
        except Exception as error:
            # However S3 said no (NoSuchUpload, or botocore unable to replay a streamed body),
            # a part refused after its upload was completed was a duplicate: nothing is lost.
            if await self._storage.completed_meanwhile(self._upload_id):
                self._late = True
                return None
            if isinstance(error, StorageError):
                raise
            if _error_code(error) == "NoSuchUpload":
                raise UploadDiscarded(
                    "this upload was discarded by the server; start it again"
                ) from None
            raise StorageError(f"the object store refused the chunk ({error})") from error

    async def finish(self) -> int:
        await self._submit()
        if self._written != self._length:
            await self.abort()
            return self._written  # the core refuses a chunk of the wrong length
        self._feed.close()
        etag = await self._outcome()
        if etag is not None:
            await self._storage.books.record_part(
                self._upload_id, self._number, etag, self._written
            )
        return self._written

    async def abort(self) -> None:
        self._feed.close(_Aborted("the request ended"))
        with contextlib.suppress(Exception):
            await asyncio.shield(self._sending)


class S3StreamSink:
    """A one-shot upload of any size: parts of `stream_part_bytes`, one sending while one fills."""

    def __init__(
        self, storage: S3Storage, upload_id: str, s3_upload_id: str, key: str,
        on_written: OnWritten | None,
    ) -> None:  # fmt: skip
        self._storage = storage
        self._on_written = on_written
        self._upload_id = upload_id
        self._s3_upload_id = s3_upload_id
        self._key = key
        self._pieces: list[Buffer] = []
        self._filled = 0
        self._number = 0
        self._written = 0
        self._sending: asyncio.Future[tuple[int, str, int]] | None = None

    async def write(self, data: Buffer) -> None:
        self._pieces.append(data)
        self._filled += len(data)
        if self._filled >= self._storage.stream_part_bytes:
            await self._send_part()

    async def _send_part(self) -> None:
        if self._sending is not None:
            sending, self._sending = self._sending, None
            try:
                number, etag, size = await sending
            except StorageError:
                raise
            except Exception as error:
                raise StorageError(f"the object store refused a part ({error})") from error
            await self._storage.books.record_part(self._upload_id, number, etag, size)
        if not self._filled:
            return
        body = b"".join(self._pieces)
        self._pieces, self._filled = [], 0
        self._number += 1
        if self._number > MAX_PARTS:
            raise StorageError("the file has more parts than S3 allows")
        self._written += len(body)
        loop = asyncio.get_running_loop()
        self._sending = loop.run_in_executor(
            self._storage.executor, self._storage.put_part, self._s3_upload_id, self._key,
            self._number, body, self._on_written,
        )  # fmt: skip

    async def finish(self) -> int:
        await self._send_part()
        await self._send_part()  # waits for the last one
        return self._written

    async def abort(self) -> None:
        if self._sending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sending)


@dataclass(frozen=True)
class _Object:
    key: str
    size: int


class S3Storage:
    """`storage.Storage` over one bucket and prefix, with presigned URLs. Parts of an unfinished
    multipart upload can't be read back (so the core hashes the file once published), objects
    have no links, and tus's pieces of any size can't be parts."""

    parts = PartRules(min_bytes=S3_MIN_PART_BYTES, max_count=MAX_PARTS, any_offset=False)

    def __init__(self, settings: Settings, books: MultipartBooks, client: Any = None) -> None:
        assert isinstance(settings.storage, S3Location)
        self.bucket = settings.storage.bucket
        self.prefix = settings.storage.prefix
        self.books = books
        self.client = client if client is not None else make_client(settings)
        # Parts hold a thread while their request streams; control calls never queue behind them.
        self.executor = ThreadPoolExecutor(max_workers=PART_THREADS, thread_name_prefix="pfd-s3")
        self.control = ThreadPoolExecutor(max_workers=CONTROL_THREADS, thread_name_prefix="pfd-s3c")
        self.stream_part_bytes = max(STREAM_PART_BYTES, -(-settings.max_size_bytes // MAX_PARTS))

    # --- helpers ---------------------------------------------------------------------------

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _path(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    async def _call(self, function: Callable[..., T], **arguments: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.control, lambda: function(**arguments))
        except Exception as error:
            if _error_code(error) or type(error).__module__.startswith("botocore"):
                raise StorageError(f"the object store failed ({error})") from error
            raise

    def put_part(
        self, s3_upload_id: str, key: str, number: int, body: bytes,
        on_written: OnWritten | None = None,
    ) -> tuple[int, str, int]:  # fmt: skip
        """In a thread: send one buffered part, check its MD5; (number, ETag, size) to record.

        Parts of a stream go one at a time, in order, so `on_written` sees the bytes in order
        (the core hashes a one-shot upload that way, with no read-back).
        """
        if on_written is not None:
            on_written([body])
        answer = self.client.upload_part(
            Bucket=self.bucket, Key=key, UploadId=s3_upload_id, PartNumber=number, Body=body,
            ContentLength=len(body),
        )  # fmt: skip
        etag = str(answer["ETag"])
        _check_etag(etag, hashlib.md5(body, usedforsecurity=False).hexdigest())
        return number, etag, len(body)

    # --- partial uploads -------------------------------------------------------------------

    async def create_partial(self, upload: Shape) -> None:
        """Nothing yet: the multipart upload starts with the first chunk, so that admitting an
        upload (under the core's admission lock) never waits for the object store."""

    async def completed_meanwhile(self, upload_id: str) -> bool:
        """Every chunk of the upload was in and its multipart upload completed by a finisher."""
        return await self.books.finishing(upload_id)

    async def _multipart(self, upload: Shape) -> tuple[str, str]:
        recorded = await self.books.multipart(upload.id)
        if recorded is not None:
            return recorded
        key = self.key(f"{upload.id}/{upload.name}")
        created = await self._call(self.client.create_multipart_upload, Bucket=self.bucket, Key=key)
        ours = str(created["UploadId"])
        winner = await self.books.add_multipart(upload.id, ours, key)
        if winner != ours:  # another process created one first: ours would only cost money
            await self._call(
                self.client.abort_multipart_upload, Bucket=self.bucket, Key=key, UploadId=ours
            )
        return winner, key

    async def open_chunk(
        self,
        upload: Shape,
        offset: int,
        on_written: OnWritten | None = None,
        length: int | None = None,  # a part's length is known from the upload: nothing to allocate
    ) -> S3PartSink | S3StreamSink:
        if upload.kind == "offsets":
            # Pieces of any size (tus), which S3 parts can't be (`parts.any_offset`).
            raise NotSupportedByStorage(
                "this server stores files in S3: upload with Dropzone chunks or PUT"
            )
        s3_upload_id, key = await self._multipart(upload)
        if upload.kind == "one_shot":
            return S3StreamSink(self, upload.id, s3_upload_id, key, on_written)
        number = offset // upload.chunk_size + 1
        part_length = min(upload.chunk_size, (upload.size or 0) - offset)
        return S3PartSink(self, upload.id, s3_upload_id, key, number, part_length)

    async def discard_partial(self, upload_id: str) -> None:
        """Abort every multipart upload of this upload (no orphaned parts), then forget them."""
        folder = self.key(f"{upload_id}/")
        listing = await self._call(
            self.client.list_multipart_uploads, Bucket=self.bucket, Prefix=folder
        )
        for item in listing.get("Uploads", []):
            with contextlib.suppress(StorageError):
                await self._call(
                    self.client.abort_multipart_upload, Bucket=self.bucket, Key=item["Key"],
                    UploadId=item["UploadId"],
                )  # fmt: skip
        await self.books.forget(upload_id)

    async def orphan_partials(self, idle_since: float) -> list[str]:
        """Upload ids of multipart uploads begun before `idle_since` (the core checks the rows)."""
        found: list[str] = []
        arguments: dict[str, Any] = {"Bucket": self.bucket}
        if self.prefix:
            arguments["Prefix"] = self.prefix + "/"
        while True:
            listing = await self._call(self.client.list_multipart_uploads, **arguments)
            for item in listing.get("Uploads", []):
                if item["Initiated"].timestamp() < idle_since:
                    upload_id = self._path(item["Key"]).split("/", 1)[0]
                    if upload_id not in found:
                        found.append(upload_id)
            if not listing.get("IsTruncated"):
                return found
            arguments["KeyMarker"] = listing["NextKeyMarker"]
            arguments["UploadIdMarker"] = listing["NextUploadIdMarker"]

    # --- publishing ------------------------------------------------------------------------

    async def publish(self, upload_id: str, name: str, taken: set[str]) -> str:
        """Complete the multipart upload from the recorded parts; returns the object's path."""
        recorded = await self.books.multipart(upload_id)
        if recorded is None:
            # Completed by an earlier finisher that died before the books said so?
            path = f"{upload_id}/{name}"
            if await self.exists(path):
                return path
            raise UploadDiscarded("this upload was discarded by the server; start it again")
        s3_upload_id, key = recorded
        recorded_parts = await self.books.parts(upload_id)
        if not recorded_parts:  # an empty file: S3 wants at least one part, so put it whole
            await self._call(self.client.put_object, Bucket=self.bucket, Key=key, Body=b"")
            await self.discard_partial(upload_id)
        else:
            await self._complete(key, s3_upload_id, recorded_parts)
            await self.books.forget(upload_id)
        return self._path(key)

    async def _complete(
        self, key: str, s3_upload_id: str, recorded: list[tuple[int, str, int]]
    ) -> None:
        listing = [{"PartNumber": number, "ETag": etag} for number, etag, _ in recorded]
        try:
            await self._call(
                self.client.complete_multipart_upload, Bucket=self.bucket, Key=key,
                UploadId=s3_upload_id, MultipartUpload={"Parts": listing},
            )  # fmt: skip
        except StorageError as error:
            if _error_code(error.__cause__ or error) != "NoSuchUpload":
                raise
            # Completed already by a finisher whose lease ran out: the object is there.
            head = await self._head(key)
            if head is None or head.size != sum(size for _, _, size in recorded):
                raise

    # --- published objects -----------------------------------------------------------------

    async def _head(self, key: str) -> _Object | None:
        try:
            answer = await self._call(self.client.head_object, Bucket=self.bucket, Key=key)
        except StorageError as error:
            if _error_code(error.__cause__ or error) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return _Object(key, int(answer["ContentLength"]))

    async def exists(self, path: str) -> bool:
        return await self._head(self.key(path)) is not None

    async def delete(self, path: str) -> None:
        await self._call(self.client.delete_object, Bucket=self.bucket, Key=self.key(path))

    async def open_range(self, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        answer = await self._call(
            self.client.get_object, Bucket=self.bucket, Key=self.key(path),
            Range=f"bytes={start}-{end - 1}",
        )  # fmt: skip
        body = answer["Body"]
        try:
            remaining = end - start
            while remaining > 0:
                piece: bytes = await loop.run_in_executor(
                    self.control, body.read, min(READ_BYTES, remaining)
                )
                if not piece:
                    break
                remaining -= len(piece)
                yield piece
        finally:
            body.close()

    def presigned_url(self, path: str, disposition: str) -> str:
        return str(
            self.client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": self.key(path),
                    "ResponseContentDisposition": disposition,
                },
                ExpiresIn=PRESIGN_SECONDS,
            )
        )

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.control.shutdown(wait=True)
