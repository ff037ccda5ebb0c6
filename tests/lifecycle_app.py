"""An in-process app with a controllable clock (and free space), for the lifecycle tests."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette 1.x prefers httpx2 for its TestClient
    from starlette.testclient import TestClient

from pyfiledrop.config import Settings, prepare_folders
from pyfiledrop.meta.sqlite import Database
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.app import create_app

# Real time (to the hour), not a far-off date: the janitor compares the clock with file mtimes.
START = float(time.time() // 3600 * 3600)


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclasses.dataclass
class App:
    client: TestClient
    uploads: Uploads
    clock: FakeClock
    settings: Settings

    def other_client(self) -> TestClient:
        """A second browser: its own owner cookie, same app (the lifespan already runs)."""
        other = TestClient(self.client.app, base_url="http://testserver")
        other.portal = self.client.portal  # type: ignore[attr-defined]
        return other

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function on the app's event loop (e.g. a janitor pass)."""
        return self.client.portal.call(function, *args)  # type: ignore[union-attr]


def settings_in(root: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "storage": root / "storage",
        "chunks": root / "chunks",
        "data": root / "data",
        "allow_downloads": True,
        "min_free": 0,
    }
    values.update(overrides)
    settings = Settings(**values)
    prepare_folders(settings)
    return settings


@contextmanager
def running_app(
    root: Path, free_bytes: Callable[[], int] | None = None, **overrides: Any
) -> Iterator[App]:
    settings = settings_in(root, **overrides)
    clock = FakeClock()
    db = Database(settings.db_path)
    storage = LocalStorage(settings.storage, settings.chunks, writeback=False)
    if free_bytes is not None:
        storage.free_bytes = free_bytes  # type: ignore[method-assign]
    uploads = Uploads(settings, db, storage, clock=clock)
    try:
        with TestClient(create_app(settings, uploads=uploads)) as client:
            yield App(client, uploads, clock, settings)
    finally:
        storage.close()
        db.close()


def put(client: TestClient, name: str, data: bytes, **params: str) -> dict[str, Any]:
    response = client.put(f"/put/{quote(name)}", content=data, params=params)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record
