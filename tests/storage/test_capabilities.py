"""The storage seam: each store's abilities are found once, and no store reads the core's books."""

from __future__ import annotations

import ast
from pathlib import Path

import pyfiledrop
from pyfiledrop.config import load_settings
from pyfiledrop.storage import capabilities
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.storage.s3 import S3Storage

STORAGE = Path(pyfiledrop.__file__).parent / "storage"


def _present(store: object) -> set[str]:
    found = capabilities(store)  # type: ignore[arg-type]
    return {name for name, value in vars(found).items() if value is not None}


def test_local_disk_has_every_ability_but_presigned_urls(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "storage", tmp_path / "chunks")
    try:
        assert _present(store) == {
            "partial_files",
            "concatenation",
            "duplicate_linking",
            "free_space",
            "self_check",
        }
        assert store.parts.any_offset and store.parts.min_bytes == 1
    finally:
        store.close()


def test_s3_has_presigned_urls_only_and_its_part_minimum(tmp_path: Path) -> None:
    settings = load_settings({"storage": "s3://bkt/p"}, environ={}, cwd=tmp_path).settings
    store = S3Storage(settings, books=None, client=object())  # type: ignore[arg-type]
    try:
        assert _present(store) == {"presigned_urls"}
        assert not store.parts.any_offset and store.parts.min_bytes == 5 * 1024 * 1024
    finally:
        store.close()


def test_no_store_imports_the_books() -> None:
    """A store is told an upload's shape; S3's multipart books come through its own port."""
    offenders = {}
    for path in sorted(STORAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        found = sorted(m for m in modules if m.startswith("pyfiledrop.meta"))
        if found:
            offenders[path.name] = found
    assert offenders == {}
