"""Dropzone's protocol: multipart chunks with `dz*` fields, parsed as they stream in.

The body goes through python-multipart's push parser piece by piece; Dropzone sends the `dz*`
fields before the file part, so by the time the file's bytes start the chunk is known, checked,
and its bytes go straight to their place in the partial file. Nothing is spooled.
"""

from __future__ import annotations

import contextlib
import math
import re
import uuid
from contextlib import aclosing
from typing import Any

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from pyfiledrop.errors import Invalid, TooLarge, WrongContentType
from pyfiledrop.lifecycle import file_options
from pyfiledrop.protocols.body import ChunkFeeder, body_pieces, declared_length, idle_timeout
from pyfiledrop.protocols.file_part import plain_bytes
from pyfiledrop.storage import MAX_CHUNK_COUNT
from pyfiledrop.uploads import MAX_CHUNK_SIZE, ChunkClaim, Uploads
from pyfiledrop.web.records import chunk_answer
from pyfiledrop.web.watch import note_upload

DZ_FIELDS = (
    "dzuuid",
    "dzchunkindex",
    "dztotalfilesize",
    "dzchunksize",
    "dztotalchunkcount",
    "dzchunkbyteoffset",
)
MAX_FIELDS = 64
MAX_FIELD_BYTES = 4096
MAX_FILENAME_BYTES = 4096
BODY_OVERHEAD_BYTES = 64 * 1024  # boundaries, headers and fields around the file part
# Before the file part: every field at its longest, plus its part head.
MAX_PREAMBLE_BYTES = MAX_FIELDS * (MAX_FIELD_BYTES + 512)
# After the file part Dropzone sends nothing; a handful of small fields is all we tolerate, so
# parts there can't make the server keep names or read on without end (chunked bodies included).
MAX_PARTS_AFTER_FILE = 8
MAX_BYTES_AFTER_FILE = 8 * 1024
# Of a body buffer before the file part, what the parser reads at a time: far more than
# Dropzone's fields, far less than a buffer of file bytes.
HEAD_BYTES = 16 * 1024


class _MultipartForm:
    """What the push parser saw of one multipart form (its fields, the file part's pieces): the
    callbacks only collect; the request loop acts on what they saw."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.fields_after_file: list[str] = []
        self.header_name = b""
        self.header_value = b""
        self.headers: dict[bytes, bytes] = {}
        self.part_name = ""
        self.field_value = bytearray()
        self.in_file = False
        self.file_started = False
        self.file_ended = False
        self.filename: str | None = None
        self.file_pieces: list[memoryview] = []
        self.error: str | None = None
        self.bytes_after_file = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        if self.file_ended and len(self.fields_after_file) >= MAX_PARTS_AFTER_FILE:
            self.error = "too many form fields after the file part"
        self.headers = {}
        self.field_value = bytearray()
        self.in_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_after_file(end - start)
        self.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_after_file(end - start)
        self.header_value += data[start:end]

    def _count_after_file(self, length: int) -> None:
        if self.file_ended:
            self.bytes_after_file += length
            if self.bytes_after_file > MAX_BYTES_AFTER_FILE:
                self.error = "too much form data after the file part"

    def on_header_end(self) -> None:
        self.headers[self.header_name.lower()] = self.header_value
        self.header_name = self.header_value = b""

    def on_headers_finished(self) -> None:
        disposition, options = form_disposition(self.headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            self.error = "each part needs Content-Disposition: form-data with a name"
            return
        self.part_name = options[b"name"].decode("utf-8", "replace")
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                self.error = "too many form fields"
            return
        if self.file_started:
            self.error = "one file per request"
            return
        raw_name = options[b"filename"][:MAX_FILENAME_BYTES]
        self.filename = raw_name.decode("utf-8", "replace")
        self.in_file = self.file_started = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            # `data` is bytes, or a body buffer never written again: a view stays valid, no copy.
            self.file_pieces.append(memoryview(data)[start:end])
            return
        self._count_after_file(end - start)
        if self.error:
            return
        if len(self.field_value) + end - start > MAX_FIELD_BYTES:
            self.error = f"form field {self.part_name!r} is too long"
        else:
            self.field_value += data[start:end]

    def on_part_end(self) -> None:
        if self.in_file:
            self.file_ended = True
            self.in_file = False
            return
        self.fields[self.part_name] = self.field_value.decode("utf-8", "replace")
        if self.file_started:
            self.fields_after_file.append(self.part_name)


# How browsers and the uploader write a part's Content-Disposition: read without the general
# parser (a chunk has seven parts; parse_options_header was ~15% of parsing its fields).
_PLAIN_DISPOSITION = re.compile(rb'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?')


def form_disposition(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """`parse_options_header(value)`, quicker for the plain form (no quotes or backslashes in
    the values, nothing else in the header)."""
    plain = _PLAIN_DISPOSITION.fullmatch(value)
    if plain is None:
        return parse_options_header(value)
    name, filename = plain.groups()
    options = {b"name": name}
    if filename is not None:
        options[b"filename"] = filename
    return b"form-data", options


def boundary_of(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise WrongContentType("expected multipart/form-data")
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise Invalid("multipart boundary missing or too long")
    return bytes(boundary)


def _integer(fields: dict[str, str], name: str) -> int:
    value = fields.get(name)
    if value is None:
        raise Invalid(f"missing field {name}")
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        raise Invalid(f"{name} must be a non-negative integer")
    return int(value)


def parse_upload_id(text: str) -> str:
    """The canonical form of a client's UUID (a `dzuuid`, or the one in an upload's URL), or
    400: it becomes part of a file name."""
    try:
        if len(text) > 64:
            raise ValueError
        return str(uuid.UUID(text))
    except (ValueError, AttributeError, TypeError):
        raise Invalid("dzuuid must be a UUID") from None


def check_claim(uploads: Uploads, claim: ChunkClaim) -> None:
    """Fields must agree with each other and with the limits, before any byte is written."""
    if claim.total_size < 0 or claim.chunk_size < 1 or claim.count < 1 or claim.index < 0:
        raise Invalid("chunk fields must not be negative, and sizes and counts at least 1")
    if claim.chunk_size > MAX_CHUNK_SIZE or claim.count > MAX_CHUNK_COUNT:
        raise TooLarge("chunk size or chunk count over the server's limit")
    if claim.total_size > uploads.settings.max_size_bytes:
        raise TooLarge(f"file is larger than the limit of {uploads.settings.max_size} MiB")
    expected_count = max(1, math.ceil(claim.total_size / claim.chunk_size))
    if claim.count != expected_count:
        raise Invalid(
            f"dztotalchunkcount {claim.count} does not match size and chunk size "
            f"(expected {expected_count})"
        )
    rules = uploads.storage.parts
    if claim.count > 1 and claim.chunk_size < rules.min_bytes:
        raise Invalid(
            f"dzchunksize must be at least {rules.min_bytes} bytes on this server"
            " (its object store's smallest part)"
        )
    if claim.count > rules.max_count:
        raise TooLarge(
            f"at most {rules.max_count} chunks per file on this server; use bigger chunks"
        )
    if claim.index >= claim.count:
        raise Invalid("dzchunkindex is out of range")
    if claim.offset != claim.index * claim.chunk_size:
        raise Invalid("dzchunkbyteoffset does not match dzchunkindex * dzchunksize")


def claim_from_fields(fields: dict[str, str], filename: str | None) -> ChunkClaim:
    return ChunkClaim(
        upload_id=parse_upload_id(fields["dzuuid"]),
        index=_integer(fields, "dzchunkindex"),
        count=_integer(fields, "dztotalchunkcount"),
        total_size=_integer(fields, "dztotalfilesize"),
        chunk_size=_integer(fields, "dzchunksize"),
        offset=_integer(fields, "dzchunkbyteoffset"),
        filename=filename,
        options=file_options(fields),
    )


class _ChunkBody:
    """One request body on its way through the parser: the form it holds, and the feeder of its
    file part once that starts."""

    def __init__(self, uploads: Uploads, owner: str, claimant: str, request: Request) -> None:
        self.uploads = uploads
        self.owner = owner
        self.claimant = claimant
        self.request = request
        boundary = boundary_of(request)  # a wrong content type (415) before a bad length (400)
        self.content_length = declared_length(request)
        self.form = _MultipartForm()
        self.parser = MultipartParser(boundary, self.form.callbacks())  # type: ignore[arg-type]
        self.feeder: ChunkFeeder | None = None
        self.consumed = 0
        self.body_cap = 0  # set when the file part starts

    async def take(self, piece: bytes | bytearray) -> None:
        self.consumed += len(piece)
        if self.feeder is not None and self.consumed > self.body_cap:
            raise TooLarge("the request body is longer than the chunk it carries")
        rest: bytes | bytearray | memoryview = piece
        while rest:
            rest = await self._skip_file_bytes(rest)
            if not rest:
                return
            # Before the file part, the parser gets a buffer's head: the file bytes in the rest
            # may then skip it (its search for the delimiter is the costly part).
            if not self.form.file_started and len(rest) > HEAD_BYTES:
                now, rest = rest[:HEAD_BYTES], memoryview(rest)[HEAD_BYTES:]
            else:
                now, rest = rest, b""
            await self._parse(now.tobytes() if isinstance(now, memoryview) else now)

    async def _skip_file_bytes(
        self, data: bytes | bytearray | memoryview
    ) -> bytes | bytearray | memoryview:
        """Feed the leading bytes that surely are the file's without the parser; the rest."""
        feeder, form = self.feeder, self.form
        if feeder is None or not form.in_file or form.error:
            return data
        length = feeder.plan.length
        skip = plain_bytes(self.parser, data, None if length is None else length - feeder.received)
        if skip:
            await feeder.feed(memoryview(data)[:skip])
            data = data[skip:]  # a view, or a copy of a tail no longer than a delimiter
        return data

    async def _parse(self, data: bytes | bytearray) -> None:
        form = self.form
        self.parser.write(data)  # type: ignore[arg-type]  # bytearray: bytes' methods
        if form.error:
            raise Invalid(form.error)
        if not form.file_started and self.consumed > MAX_PREAMBLE_BYTES:
            raise TooLarge("the form fields before the file part are too long")
        if form.file_started and self.feeder is None:
            _note_upload_id(self.request, form.fields)
            self.feeder = feeder = ChunkFeeder(
                await _begin(self.uploads, self.owner, self.claimant, form)
            )
            _refuse_oversized_body(feeder, self.content_length, self.consumed, form)
            # The whole body, however framed: what came so far, the file, a little more.
            self.body_cap = self.consumed + feeder.plan.limit + BODY_OVERHEAD_BYTES
        if self.feeder is not None and form.file_pieces:
            pieces, form.file_pieces = form.file_pieces, []
            for file_piece in pieces:
                await self.feeder.feed(file_piece)
        if form.file_ended:
            # Only a few small fields may follow (a one-shot file's limit is the server's
            # whole size limit: without this, bytes after its end could run on that long).
            self.body_cap = min(self.body_cap, self.consumed + BODY_OVERHEAD_BYTES)

    def finished(self) -> ChunkFeeder:
        self.parser.finalize()
        if self.feeder is None:
            raise Invalid("no file part in the request")
        if not self.form.file_ended:
            raise Invalid("the request ended in the middle of the file part")
        if any(name in DZ_FIELDS for name in self.form.fields_after_file):
            raise Invalid("dz* fields must come before the file part")
        return self.feeder


async def receive(
    request: Request, uploads: Uploads, owner: str, claimant: str | None = None
) -> dict[str, Any]:
    """Handle one `POST /upload`: a Dropzone chunk, or a one-shot file without `dzuuid`.

    A one-shot file belongs to `owner`; a chunk claims its upload for `claimant` (the owner when
    the request sent its cookie, else uploads.NO_OWNER)."""
    body = _ChunkBody(uploads, owner, owner if claimant is None else claimant, request)
    if body.content_length is not None and body.content_length > (
        uploads.settings.max_size_bytes + BODY_OVERHEAD_BYTES
    ):
        raise TooLarge(f"file is larger than the limit of {uploads.settings.max_size} MiB")
    try:
        async with aclosing(body_pieces(request, idle_timeout(uploads))) as pieces:
            async for piece in pieces:
                await body.take(piece)
        return await chunk_answer(uploads, await body.finished().finish(uploads))
    except FormParserError as error:
        # Broken boundaries, overlong part headers...: the client's mistake, not a 500.
        if body.feeder is not None:
            await body.feeder.abort(uploads)
        raise Invalid(f"malformed multipart body: {error}") from None
    except BaseException:
        if body.feeder is not None:
            await body.feeder.abort(uploads)
        raise


def _note_upload_id(request: Request, fields: dict[str, str]) -> None:
    """Logs and refusals name the upload: only a well-formed id (it comes from the client)."""
    with contextlib.suppress(Invalid):
        note_upload(request.scope, parse_upload_id(fields.get("dzuuid", "")))


async def _begin(uploads: Uploads, owner: str, claimant: str, form: _MultipartForm) -> Any:
    if "dzuuid" in form.fields:
        claim = claim_from_fields(form.fields, form.filename)
        check_claim(uploads, claim)
        return await uploads.begin_chunk(claimant, claim)
    if any(name in form.fields for name in DZ_FIELDS):
        raise Invalid("dz* fields without dzuuid")
    return await uploads.begin_stream(owner, form.filename, None, file_options(form.fields))


def _refuse_oversized_body(
    feeder: ChunkFeeder, content_length: int | None, consumed: int, form: _MultipartForm
) -> None:
    """A body whose Content-Length can't fit the claimed chunk is refused before it is read."""
    if content_length is None or feeder.plan.length is None:
        return
    pending = sum(len(piece) for piece in form.file_pieces)
    remaining_body = content_length - consumed + pending
    if remaining_body > feeder.plan.length + BODY_OVERHEAD_BYTES:
        raise TooLarge("the request body is longer than the chunk it claims")
