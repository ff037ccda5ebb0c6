"""The random files uploaded, made once and reused while their size matches."""

import hashlib
import os
from pathlib import Path

from bench.units import MIB

BLOCK = 16 * MIB


def random_file(path: Path, size: int) -> tuple[Path, str]:
    """(path, SHA-256) of a file of `size` random bytes; the hash is kept next to it."""
    sidecar = path.with_name(path.name + ".sha256")
    if path.is_file() and path.stat().st_size == size and sidecar.is_file():
        return path, sidecar.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as file:
        left = size
        while left:
            block = os.urandom(min(BLOCK, left))
            digest.update(block)
            file.write(block)
            left -= len(block)
        os.fsync(file.fileno())
    sidecar.write_text(digest.hexdigest() + "\n")
    return path, digest.hexdigest()
