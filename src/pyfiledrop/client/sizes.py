"""Byte sizes as people read them (`1.0 GiB`, `812 MB/s`); typed ones: pyfiledrop.units.parse_size,
shared with the server's settings, so `8M` means the same to both."""


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
