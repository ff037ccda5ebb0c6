"""Shared fixtures: a real `pyfiledrop serve` on a free 127.0.0.1 port, and file helpers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pytest

if TYPE_CHECKING:
    from tests.services import Postgres, S3Endpoint

T = TypeVar("T")

START_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def uvicorn_in_thread(app: Any) -> Iterator[int]:
    """`app` under uvicorn (our bounded HTTP protocol) in a thread of this process, on a free
    port, so a test can patch module state (timeouts, readers) the server then uses."""
    import threading

    import uvicorn

    from pyfiledrop.web.http_limits import http_protocol

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=http_protocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(15)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(4 * 1024 * 1024):
            digest.update(piece)
    return digest.hexdigest()


def random_file(path: Path, size: int) -> Path:
    """A file of `size` random bytes, written in pieces (tests make files up to a few GiB)."""
    with path.open("wb") as handle:
        remaining = size
        while remaining:
            piece = os.urandom(min(remaining, 8 * 1024 * 1024))
            handle.write(piece)
            remaining -= len(piece)
    return path


@dataclass
class Server:
    """A `pyfiledrop serve` subprocess; stop/kill/start keep the same folders and port."""

    root: Path
    args: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_dir(self) -> Path:
        return self.root / "storage"

    @property
    def chunks_dir(self) -> Path:
        return self.root / "chunks"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "pyfiledrop", "serve",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--storage", str(self.storage_dir), "--chunks", str(self.chunks_dir),
            "--data", str(self.data_dir), *self.args,
        ]  # fmt: skip

    def start(self) -> Server:
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env}
        env = {k: v for k, v in env.items() if not k.startswith("PYFILEDROP_") or k in self.env}
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.root, env=env
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Server:
        self.kill()
        return self.start()

    def health(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.url}/healthz", timeout=5).json()
        return result

    def stored_files(self) -> list[Path]:
        return sorted(p for p in self.storage_dir.iterdir() if not p.name.startswith("."))

    def path_of(self, record: dict[str, Any]) -> Path:
        """Where a published file is on disk: its name there may differ from the name its
        uploader sees (`name (1).ext`), which only the database knows."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "pyfiledrop.sqlite3")) as db:
            (path,) = db.execute("SELECT path FROM files WHERE id = ?", (record["id"],)).fetchone()
        return self.storage_dir / str(path)

    def sql(self, statement: str, *parameters: Any) -> None:
        """One statement on this server's database (SQLite or PostgreSQL). Another process's
        clock can't be faked: a test moves the stored times back instead of waiting for them."""
        from pyfiledrop.meta import open_database

        url = self.args[self.args.index("--database") + 1] if "--database" in self.args else None
        db = open_database(url, self.data_dir)
        try:
            db.run_sync(lambda connection: connection.execute(statement, parameters))
        finally:
            db.close()

    def expire(self, file_id: str) -> None:
        """The file's expiry moved into the past, as if its `--expire-after` had run out."""
        self.sql("UPDATE files SET expires = ? WHERE id = ?", time.time() - 1, file_id)

    def rss_peak_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        return 0


ServerFactory = Callable[..., Server]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """`server_factory("-a", "--max-size", "10")` starts a server with those extra flags."""
    started: list[Server] = []

    def make(*args: str, env: dict[str, str] | None = None, start: bool = True) -> Server:
        root = tmp_path / f"server{len(started)}"
        root.mkdir()
        server = Server(root, list(args), env=env or {})
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> Server:
    """A server with downloads allowed."""
    return server_factory("--allow-downloads")


# --- services for the scale-out backends (PostgreSQL, S3 through moto) ------------------------


def _service_or_skip(start: Callable[[], T]) -> T:
    from tests.services import ServiceMissing

    try:
        return start()
    except ServiceMissing as missing:
        if os.environ.get("CI"):
            raise  # CI installs the services (`make services`): missing there is a failure
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the whole session (Debian's package, a cluster under /tmp)."""
    from tests.services import start_postgres

    server = _service_or_skip(start_postgres)
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: Postgres) -> str:
    """A fresh database for one test."""
    return postgres.create_database()


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """moto's S3 server for the session; `s3_endpoint.create_bucket()` makes a fresh bucket."""
    from tests.services import start_moto

    log = tmp_path_factory.mktemp("moto") / "moto.log"
    endpoint = _service_or_skip(lambda: start_moto(log))
    yield endpoint
    endpoint.stop()
