"""A file part's plain middle skips the parser: the same bytes and fields as parsing it all; a
chunk's claimed length skips the delimiter search; plain part heads skip the general parser."""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from pathlib import Path
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser, parse_options_header

from pyfiledrop.protocols import dropzone, file_part
from pyfiledrop.protocols.dropzone import _MultipartForm
from tests.dz import chunk_fields
from tests.harness import app_client
from tests.rawhttp import multipart

BOUNDARY = "rawb0undary"
DELIMITER = b"\r\n--" + BOUNDARY.encode()
MULTIPART = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
MiB = 1024 * 1024
# What a file's bytes may hold that looks like a delimiter's start, or all of one minus a byte.
NEAR = st.sampled_from([b"\r", b"\r\n", b"\r\n-", b"\r\n--", DELIMITER[:-1], DELIMITER[:-3]])
DATA = st.lists(st.one_of(st.binary(max_size=40), NEAR), max_size=30).map(b"".join)


def parse(
    body: bytes, cuts: list[int], skip: bool, claim: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """The file's bytes and the fields, as dropzone.receive sees them with body buffers cut at
    `cuts`, skipping the parser for plain bytes (`skip`), or for the file's `claim`ed length."""
    form = _MultipartForm()
    parser = MultipartParser(BOUNDARY.encode(), form.callbacks())  # type: ignore[arg-type]
    received = bytearray()
    edges = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(edges):
        piece = bytearray(body[start:end])
        if claim is not None and form.in_file:
            plain = file_part.plain_bytes(parser, piece, claim - len(received))
            received += piece[:plain]
            piece = piece[plain:]
        elif skip and form.in_file:
            plain = file_part.plain_bytes(parser, piece)
            received += piece[:plain]
            piece = piece[plain:]
        parser.write(piece)  # type: ignore[arg-type]
        received += b"".join(form.file_pieces)
        form.file_pieces = []
    assert form.file_ended and not form.error
    return bytes(received), form.fields


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=DATA, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_skipping_the_parser_changes_nothing(data: bytes, cuts: list[int]) -> None:
    body = multipart([("dzuuid", "x"), ("dzchunkindex", "0")], "f.bin", data, BOUNDARY)
    body += multipart([("after", "y")], None, None, BOUNDARY)[: -len(BOUNDARY) - 6]
    cuts = [cut % (len(body) + 1) for cut in cuts]
    assert parse(body, cuts, skip=True) == parse(body, cuts, skip=False)
    assert parse(body, cuts, skip=True)[0] == data
    assert parse(body, cuts, skip=False, claim=len(data)) == parse(body, cuts, skip=False)


def test_a_delimiter_cut_anywhere_still_ends_the_file() -> None:
    data = b"\r\n-" + bytes(range(256)) * 4 + DELIMITER[:-1]
    body = multipart([("dzuuid", "x")], "f.bin", data, BOUNDARY)
    end = body.index(DELIMITER + b"--")
    for cut in range(end - 30, end + len(DELIMITER) + 4):
        assert parse(body, [end - 1000, cut], skip=True) == (data, {"dzuuid": "x"})


def test_big_plain_buffers_skip_the_parser() -> None:
    """A buffer in the file's middle without the delimiter goes on whole but for its tail."""
    form = _MultipartForm()
    parser = MultipartParser(BOUNDARY.encode(), form.callbacks())  # type: ignore[arg-type]
    parser.write(multipart([], "f.bin", b"")[: -len(BOUNDARY) - 8])
    assert form.in_file
    piece = bytearray(b"\r" * 10 + bytes(range(256)) * 4096 + b"\r\n--")
    assert file_part.plain_bytes(parser, piece) == len(piece) - len(DELIMITER) + 1
    assert file_part.plain_bytes(parser, piece + DELIMITER + b"--\r\n") == len(piece)
    assert file_part.plain_bytes(parser, bytes(piece)) == len(piece) - len(DELIMITER) + 1


def test_find_finds_the_delimiter_anywhere() -> None:
    for position in (0, 1, 1000, 65536 - len(DELIMITER)):
        haystack = bytearray(65536)
        haystack[position : position + len(DELIMITER)] = DELIMITER
        assert file_part.find(haystack, DELIMITER, len(haystack)) == position
        assert file_part.find(bytes(haystack), DELIMITER, len(haystack)) == position
        assert file_part.find(haystack, DELIMITER, position + len(DELIMITER) - 1) == -1
    assert file_part.find(b"", DELIMITER, 0) == -1


def test_a_claim_bounds_the_plain_bytes_and_a_delimiter_ends_them() -> None:
    form = _MultipartForm()
    parser = MultipartParser(BOUNDARY.encode(), form.callbacks())  # type: ignore[arg-type]
    piece = bytearray(b"x" * 100)
    assert file_part.plain_bytes(parser, piece, 500) == 0  # before the file part
    parser.write(multipart([], "f.bin", b"")[: -len(BOUNDARY) - 8])
    assert form.in_file
    last = len(DELIMITER) + 4  # the claim's last bytes, where its delimiter may start
    held = 100 - len(DELIMITER) + 1  # a delimiter may start in a buffer's last bytes
    assert file_part.plain_bytes(parser, piece, 50 + last) == 50
    assert file_part.plain_bytes(parser, piece, 500) == held
    assert file_part.plain_bytes(parser, memoryview(bytes(piece)), 500) == held
    assert file_part.plain_bytes(parser, piece, last) == 0
    padded = bytearray(b"x" * 30) + DELIMITER + b"x" * 100
    assert file_part.plain_bytes(parser, padded, 500) == 30  # a claim ends at a delimiter
    assert file_part.plain_bytes(parser, memoryview(padded)[10:], 500) == 20
    parser.write(b"\r\n-")  # a delimiter may have begun: the parser must see what follows
    assert file_part.plain_bytes(parser, piece, 500) == 0


def test_find_reads_only_up_to_its_end() -> None:
    haystack = bytearray(b"y" * 200)
    haystack[150 : 150 + len(DELIMITER)] = DELIMITER
    for piece in (haystack, bytes(haystack), memoryview(haystack), memoryview(bytes(haystack))):
        assert file_part.find(piece, DELIMITER, len(haystack)) == 150
        assert file_part.find(piece, DELIMITER, 150 + len(DELIMITER)) == 150
        assert file_part.find(piece, DELIMITER, 150 + len(DELIMITER) - 1) == -1
    assert file_part.find(memoryview(haystack)[100:], DELIMITER, 1000) == 50


def chunk_body(data: bytes, claimed: int) -> bytes:
    fields = list(chunk_fields(str(uuid.uuid4()), 0, claimed, claimed).items())
    return multipart(fields, "f.bin", data, BOUNDARY)


def test_the_parser_reads_only_a_chunks_fields_and_end(tmp_path: Path) -> None:
    """The parser reads a chunk's fields and its end, never the megabytes in between."""
    data = random.Random(5).randbytes(3 * MiB)
    parsed: list[int] = []
    write = MultipartParser.write

    def counting(parser: MultipartParser, chunk: bytes) -> int:
        parsed.append(len(chunk))
        return write(parser, chunk)

    with app_client(tmp_path / "app") as client:
        with patch.object(MultipartParser, "write", counting):
            response = client.post(
                "/upload", content=chunk_body(data, len(data)), headers=MULTIPART
            )
        assert response.status_code == 200, response.text
        assert response.json()["file"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sum(parsed) < 2 * dropzone.HEAD_BYTES


def test_a_chunk_ends_at_its_delimiter_and_is_as_long_as_it_claims(tmp_path: Path) -> None:
    """Past its first buffer's head a chunk's file part still ends at its delimiter: a part that
    holds one, or ends before its claim, leaves the body short (400); bytes past the claim are
    over the chunk (413)."""
    data = b"a" * 2 * dropzone.HEAD_BYTES + DELIMITER + b"--\r\n" + b"b" * 1000
    plain = b"a" * 3 * dropzone.HEAD_BYTES
    with app_client(tmp_path / "app") as client:
        short = [(plain, len(plain) + cut, 400) for cut in (1, len(DELIMITER), 100, 5000)]
        cases = [(data, len(data), 400), (plain, len(plain), 200), *short]
        for sent, claimed, status in cases:
            response = client.post("/upload", content=chunk_body(sent, claimed), headers=MULTIPART)
            assert response.status_code == status, response.text
        longer = chunk_body(b"c" * 2 * dropzone.HEAD_BYTES, 1000)
        assert client.post("/upload", content=longer, headers=MULTIPART).status_code == 413
        stored = list((tmp_path / "app" / "storage").iterdir())
    assert [path.read_bytes() for path in stored] == [plain]


DISPOSITION_PIECES = st.sampled_from(
    [b"form-data", b"Form-Data", b"; ", b";", b" ", b"name=", b"filename=", b"filename*=", b'"',
     b"\\", b"x", b"C:\\dir\\f.bin", b"\\\\host\\f", b";x", b"=", b"\xe9", b"*"]
)  # fmt: skip


@settings(max_examples=1000, deadline=None, derandomize=True)
@given(
    st.one_of(
        st.lists(DISPOSITION_PIECES, max_size=12).map(b"".join),
        st.tuples(st.binary(max_size=20), st.none() | st.binary(max_size=20)).map(
            lambda pair: b'form-data; name="' + pair[0] + b'"'
            + (b"" if pair[1] is None else b'; filename="' + pair[1] + b'"')
        ),
    )
)  # fmt: skip
def test_a_part_head_reads_as_the_general_parser_reads_it(value: bytes) -> None:
    assert dropzone.form_disposition(value) == parse_options_header(value)


def test_a_short_file_part_padded_by_a_field_to_its_claim_is_not_stored(tmp_path: Path) -> None:
    """A file part shorter than its chunk claims, followed by a field whose bytes make the body's
    closing delimiter land exactly at the claim's end: parsing it all, the part is short (400);
    with the claim ending the part, the field's delimiter, headers and value were stored as the
    file's bytes (200), a file no multipart reader of the same body would see."""
    from tests.rawhttp import part

    data = random.Random(7).randbytes(256 * 1024)
    padding = part("note", b"n" * 5000, BOUNDARY)
    # The file part as the claim sees it: the data, then the field's part up to its end.
    claimed = len(data) + len(padding)
    fields = list(chunk_fields(str(uuid.uuid4()), 0, claimed, claimed).items())
    body = multipart(fields, None, None, BOUNDARY)[: -len(BOUNDARY) - 6]
    body += part("file", data, BOUNDARY, "f.bin") + padding
    body += f"--{BOUNDARY}--\r\n".encode()
    with app_client(tmp_path / "app") as client:
        response = client.post("/upload", content=body, headers=MULTIPART)
        stored = [path.read_bytes() for path in (tmp_path / "app" / "storage").iterdir()]
    assert response.status_code == 400 or stored == [data], (response.status_code, stored[:1])
