"""Joining partial uploads on local disk (tus concatenation): exact bytes, any sizes, repeats."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pyfiledrop.storage.local import LocalStorage


def test_join_any_sizes_and_repeated_parts(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "storage", tmp_path / "chunks")
    storage.root.mkdir()
    storage.partials.mkdir()
    parts = {"a": os.urandom(8192), "b": os.urandom(5000), "c": b"z"}
    for name, data in parts.items():
        storage.partial_path(name).write_bytes(data + b"beyond its size")
    order = ["a", "b", "a", "c"]

    how = asyncio.run(storage.join_partials("final", [(p, len(parts[p])) for p in order]))

    assert storage.partial_path("final").read_bytes() == b"".join(parts[p] for p in order)
    # Shared extents on reflink filesystems (XFS, btrfs), in-kernel copies elsewhere (ext4).
    assert how in ("clone", "copy", "clone+copy")
    assert storage.partial_path("a").read_bytes() == parts["a"] + b"beyond its size"
    storage.close()
