"""The chunk framing parses as the multipart/form-data that browsers send."""

from __future__ import annotations

from typing import Any

import pytest
from python_multipart.multipart import MultipartParser

from pyfiledrop.client.multipart import multipart_frame


def parse(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """(headers, data) of each part, in order."""
    parts: list[tuple[dict[str, str], bytes]] = []
    headers: dict[str, str] = {}
    field: list[bytes] = []
    value: list[bytes] = []
    data: list[bytes] = []

    def on_part_begin() -> None:
        headers.clear()
        data.clear()

    def on_header_field(buffer: bytes, start: int, end: int) -> None:
        field.append(buffer[start:end])

    def on_header_value(buffer: bytes, start: int, end: int) -> None:
        value.append(buffer[start:end])

    def on_header_end() -> None:
        headers[b"".join(field).decode().lower()] = b"".join(value).decode("utf-8")
        field.clear()
        value.clear()

    def on_part_data(buffer: bytes, start: int, end: int) -> None:
        data.append(buffer[start:end])

    def on_part_end() -> None:
        parts.append((dict(headers), b"".join(data)))

    callbacks: Any = {
        "on_part_begin": on_part_begin,
        "on_header_field": on_header_field,
        "on_header_value": on_header_value,
        "on_header_end": on_header_end,
        "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary.encode(), callbacks)
    parser.write(body)
    parser.finalize()
    return parts


@pytest.mark.parametrize(
    "filename", ["plain.bin", "fünf € (1).txt", 'quote"d.bin', "line\r\nbreak.bin", ""]
)
def test_frame_is_fields_first_then_the_file(filename: str) -> None:
    boundary = "pyfiledrop0123456789abcdef"
    fields = [("dzuuid", "0c3c3f6c-5a7e-4b53-9b43-1b0f5d7c0e11"), ("dzchunkindex", "3")]
    head, tail = multipart_frame(boundary, fields, filename)
    payload = b"\r\n--not-the-boundary\r\n" + bytes(range(256)) * 10
    (uuid_headers, uuid_value), (_, index_value), (file_headers, file_data) = parse(
        head + payload + tail, boundary
    )
    assert uuid_headers["content-disposition"] == 'form-data; name="dzuuid"'
    assert uuid_value == fields[0][1].encode()
    assert index_value == b"3"
    disposition = file_headers["content-disposition"]
    assert disposition.startswith('form-data; name="file"; filename="')
    assert "\r" not in disposition and "\n" not in disposition
    assert disposition.count('"') == 4
    assert file_headers["content-type"] == "application/octet-stream"
    assert file_data == payload
