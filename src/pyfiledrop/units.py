"""Parsing and printing sizes and durations given by people (`8MiB`, `7d`)."""

from __future__ import annotations

import re
import time

# One reading of sizes for the server's settings and the client's flags, as GNU tools have it:
# a bare or `i` prefix is binary (`8M` = `8MiB` = 8 MiB), `B` after a prefix is decimal (`8MB`).
_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)
SIZE_RULE = "8M and 8MiB are 8 MiB; 8MB is 8,000,000 bytes"
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# A file's life or a setting's duration past this is a mistake or an attack, not a wish; the
# bound also keeps every stored time printable (time.gmtime fails past the year 9999).
MAX_DURATION_SECONDS = 100 * 365 * 86400
LAST_PRINTABLE_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
_MAX_NUMBER_CHARS = 24
_NUMBER_AND_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes from `1048576`, `8MiB`, `8M` (also MiB), `8MB` (decimal), `1.5G`. Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 8MiB, 500k, 2GB, 1048576)")
    number, prefix, suffix = match.group(1), match.group(2).lower(), match.group(3).lower()
    if suffix == "b" and prefix:
        factor = _DECIMAL[prefix]
    elif suffix == "i":
        raise ValueError(f"not a size: {text!r} (did you mean {number}{prefix.upper()}iB?)")
    else:
        factor = _BINARY[prefix]
    value = float(number) * factor
    if value != int(value):
        raise ValueError(f"not a whole number of bytes: {text!r}")
    return int(value)


def parse_duration(text: str | int) -> int:
    """Seconds from `90`, `45s`, `30m`, `12h`, `7d`, `2w`. Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _NUMBER_AND_UNIT.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _DURATION_UNITS:
        raise ValueError(f"{str(text)[:40]!r} is not a duration (examples: 90s, 30m, 12h, 7d)")
    number = match.group(1)
    if len(number) > _MAX_NUMBER_CHARS or float(number) * _DURATION_UNITS[unit] > (
        MAX_DURATION_SECONDS
    ):
        raise ValueError(f"a duration is at most {MAX_DURATION_SECONDS // 86400} days")
    return int(float(number) * _DURATION_UNITS[unit])


def format_time(moment: float) -> str:
    """ISO 8601 UTC; a moment past the year 9999 (stored before durations were bounded) prints
    as the last second of 9999 instead of breaking every list that shows it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(min(moment, LAST_PRINTABLE_TIME)))


def format_size(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: int) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and seconds % length == 0:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


# `--chunk-size auto` (the default): per file, the smallest power of two from AUTO_CHUNK_MIN to
# AUTO_CHUNK_MAX that keeps the file within AUTO_CHUNK_COUNT chunks (bigger files: the maximum).
# Few chunks keep the per-request cost small; small ones keep retries and memory cheap. The page
# (pyfiledrop.js) applies the same rule, with the numbers from its config.
AUTO_CHUNK_MIN = 1024**2
AUTO_CHUNK_MAX = 64 * 1024**2
AUTO_CHUNK_COUNT = 128
AUTO_CHUNK_MIN_S3 = 8 * 1024**2  # S3 parts (but the last) must be 5 MiB or more


def auto_chunk_size(size: int, minimum: int = AUTO_CHUNK_MIN) -> int:
    chunk = minimum
    while chunk < AUTO_CHUNK_MAX and chunk * AUTO_CHUNK_COUNT < size:
        chunk *= 2
    return chunk
