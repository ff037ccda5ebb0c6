"""The one in-process harness: the real app (as `create_app` and `open_core` compose it) behind
Starlette's TestClient, with one fake clock, its folders under a temporary directory, and the
core object for direct calls. Tests that need a real socket (crashes, several processes, real
clients, browsers) use the `server_factory` fixture in conftest.py instead."""

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
from pyfiledrop.runtime import open_core
from pyfiledrop.uploads import Uploads
from pyfiledrop.web.app import create_app


def iso(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


class FakeClock:
    """Stands still until a test moves it: expiry, idling and leases without waiting. It starts
    at the real time (whole seconds) because the janitor compares it with file mtimes."""

    def __init__(self, now: float | None = None) -> None:
        self.now = float(int(time.time())) if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def settings_in(root: Path, **overrides: Any) -> Settings:
    """Settings with every folder under `root` (created); downloads on, no free-space margin."""
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


@dataclasses.dataclass
class App:
    client: TestClient
    uploads: Uploads
    clock: FakeClock
    settings: Settings
    raise_server_exceptions: bool = True

    def other_client(self) -> TestClient:
        """A second browser: its own owner cookie, same app (the lifespan already runs)."""
        other = TestClient(
            self.client.app,
            base_url="http://testserver",
            raise_server_exceptions=self.raise_server_exceptions,
        )
        other.portal = self.client.portal  # type: ignore[attr-defined]
        return other

    def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run a coroutine function on the app's event loop (e.g. a janitor pass)."""
        return self.client.portal.call(function, *args)  # type: ignore[union-attr]


@contextmanager
def running_app(
    root: Path,
    free_bytes: Callable[[], int] | None = None,
    raise_server_exceptions: bool = True,
    peer: tuple[str, int] = ("testclient", 50000),
    **overrides: Any,
) -> Iterator[App]:
    """The app with its lifespan running. `free_bytes` stands in for the filesystem's answer;
    `raise_server_exceptions=False` shows a 500 as a response instead of raising it."""
    settings = settings_in(root, **overrides)
    clock = FakeClock()
    uploads = open_core(settings)
    uploads.clock = clock
    if free_bytes is not None:
        uploads.storage.free_bytes = free_bytes  # type: ignore[method-assign]
    app = create_app(settings, uploads=uploads)
    try:
        with TestClient(app, raise_server_exceptions=raise_server_exceptions, client=peer) as c:
            yield App(c, uploads, clock, settings, raise_server_exceptions)
    finally:
        uploads.storage.close()
        uploads.db.close()


@contextmanager
def app_client(root: Path, **overrides: Any) -> Iterator[TestClient]:
    """Just the client of `running_app`, with 500s as responses (tests that look for them)."""
    with running_app(root, raise_server_exceptions=False, **overrides) as app:
        yield app.client


def put(client: TestClient, name: str, data: bytes, **params: str) -> dict[str, Any]:
    response = client.put(f"/put/{quote(name)}", content=data, params=params)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def page_client(root: Path, **overrides: Any) -> TestClient:
    """The app without its lifespan (no core, no database): enough for what needs none, the
    page and its static files, and quicker to make."""
    return TestClient(create_app(settings_in(root, **overrides)))
