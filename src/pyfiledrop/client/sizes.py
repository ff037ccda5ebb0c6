"""Byte sizes as people type them (`8MiB`, `500k`) and as they read them (`1.0 GiB`, `812 MB/s`)."""

import re

_BINARY = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`8MiB`, `8M`, `8m` and `8MiB` are binary; `8MB` is decimal; a plain number is bytes."""
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ValueError(f"not a size: {text!r} (examples: 8MiB, 500k, 1048576)")
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


def format_size(size: float) -> str:
    if abs(size) < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} TiB"


def megabytes_per_second(size: int, seconds: float) -> float:
    """MB/s (10^6 bytes per second), the unit disks and networks are sold in."""
    return size / 1e6 / seconds if seconds > 0 else 0.0
