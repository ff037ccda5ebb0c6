"""Sizes as typed on the command line and as shown."""

from __future__ import annotations

import pytest

from pyfiledrop.client.sizes import format_size, megabytes_per_second
from pyfiledrop.config import load_settings
from pyfiledrop.units import parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("8MiB", 8 * 1024 * 1024),
        ("8M", 8 * 1024 * 1024),
        ("8m", 8 * 1024 * 1024),
        ("500k", 500 * 1024),
        ("2KiB", 2048),
        ("1.5G", 3 * 512 * 1024 * 1024),
        ("8MB", 8_000_000),
        ("1048576", 1048576),
        (" 4 MiB ", 4 * 1024 * 1024),
    ],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(("text", "reason"), [("x", "not a size"), ("-1", "not a size"),
    ("8Mi", "did you mean 8MiB"), ("1.5", "whole number"), ("", "not a size")])  # fmt: skip
def test_parse_size_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_size(text)


def test_the_server_reads_sizes_as_the_client_does() -> None:
    # One parser: `8M` was 8,000,000 bytes to the server and 8 MiB to the client.
    flags = {"chunk_size": "8M", "min_free": "8M", "quota": "8MB"}
    settings = load_settings(flags, environ={}).settings
    assert settings.chunk_size == settings.min_free == parse_size("8M") == 8 * 1024 * 1024
    assert settings.quota == 8_000_000


def test_format_size() -> None:
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(1024**3) == "1.0 GiB"
    assert format_size(5 * 1024**4) == "5.0 TiB"


def test_megabytes_per_second() -> None:
    assert megabytes_per_second(250_000_000, 0.5) == 500.0
    assert megabytes_per_second(1, 0) == 0.0
