"""A file part's plain middle skips the parser: the same bytes and fields as parsing it all."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from python_multipart.multipart import MultipartParser

from pyfiledrop.protocols import file_part
from pyfiledrop.protocols.dropzone import _MultipartForm
from tests.rawhttp import multipart

BOUNDARY = "rawb0undary"
DELIMITER = b"\r\n--" + BOUNDARY.encode()
# What a file's bytes may hold that looks like a delimiter's start, or all of one minus a byte.
NEAR = st.sampled_from([b"\r", b"\r\n", b"\r\n-", b"\r\n--", DELIMITER[:-1], DELIMITER[:-3]])
DATA = st.lists(st.one_of(st.binary(max_size=40), NEAR), max_size=30).map(b"".join)


def parse(body: bytes, cuts: list[int], skip: bool) -> tuple[bytes, dict[str, str]]:
    """The file's bytes and the fields, as dropzone.receive sees them with body buffers cut at
    `cuts`, skipping the parser for plain bytes (`skip`) or not."""
    form = _MultipartForm()
    parser = MultipartParser(BOUNDARY.encode(), form.callbacks())  # type: ignore[arg-type]
    received = bytearray()
    edges = [0, *sorted(cuts), len(body)]
    for start, end in itertools.pairwise(edges):
        piece = bytearray(body[start:end])
        if skip and form.in_file:
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
    assert file_part.plain_bytes(parser, piece + DELIMITER + b"--\r\n") == 0
    assert file_part.plain_bytes(parser, bytes(piece)) == len(piece) - len(DELIMITER) + 1


def test_contains_finds_the_delimiter_anywhere() -> None:
    for position in (0, 1, 1000, 65536 - len(DELIMITER)):
        haystack = bytearray(65536)
        haystack[position : position + len(DELIMITER)] = DELIMITER
        assert file_part.contains(haystack, DELIMITER)
        assert file_part.contains(bytes(haystack), DELIMITER)
        assert not file_part.contains(haystack[: position + len(DELIMITER) - 1], DELIMITER)
    assert not file_part.contains(b"", DELIMITER)
