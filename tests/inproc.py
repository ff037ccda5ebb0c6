"""The app in-process (Starlette's TestClient) with its folders in a temporary directory."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from pyfiledrop.config import Settings
from pyfiledrop.web.app import create_app


def settings_in(root: Path, **overrides: Any) -> Settings:
    settings = Settings(
        storage=root / "storage",
        chunks=root / "chunks",
        data=root / "data",
        allow_downloads=True,
    )
    settings = dataclasses.replace(settings, **overrides)
    for folder in (settings.storage, settings.chunks, settings.data):
        folder.mkdir(parents=True, exist_ok=True)
    return settings


@contextmanager
def app_client(root: Path, **overrides: Any) -> Iterator[TestClient]:
    app = create_app(settings_in(root, **overrides))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}
