"""Sizes and rates as people type and read them."""

import re

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$")
MIB = 1024**2
GIB = 1024**3


def parse_size(text: str) -> int:
    """Bytes in '2GiB', '256MiB', '8M' (decimal), '1048576'; ValueError otherwise."""
    match = _SIZE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"not a size: {text!r} (examples: 256MiB, 2GiB, 1048576)")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value <= 0 or value != int(value):
        raise ValueError(f"not a positive whole number of bytes: {text!r}")
    return int(value)


def format_size(size: int) -> str:
    """'2GiB', '256MiB', '1.5GiB' or bytes, whichever reads best."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if size >= factor:
            amount = size / factor
            return f"{amount:g}{unit}" if amount == int(amount) else f"{amount:.1f}{unit}"
    return f"{size}B"


def megabytes_per_second(size: int, seconds: float) -> float:
    """Decimal MB/s, the unit disks and networks are rated in."""
    return size / seconds / 1e6 if seconds > 0 else 0.0
