"""Parsing and printing sizes and durations given by people (`8MiB`, `7d`)."""

from __future__ import annotations

import re
import time

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1024**4,
}
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# A file's life or a setting's duration past this is a mistake or an attack, not a wish; the
# bound also keeps every stored time printable (time.gmtime fails past the year 9999).
MAX_DURATION_SECONDS = 100 * 365 * 86400
LAST_PRINTABLE_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
_MAX_NUMBER_CHARS = 24
_NUMBER_AND_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str | int) -> int:
    """Bytes from `1048576`, `8MiB`, `8M` (decimal), `1.5GiB`. Raises ValueError."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _NUMBER_AND_UNIT.match(str(text))
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (examples: 1048576, 512KiB, 8MiB, 2GB)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


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
