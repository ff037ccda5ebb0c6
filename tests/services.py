"""Services the scale-out tests need, started by the tests themselves on 127.0.0.1.

PostgreSQL: Debian's `postgresql` package (`make services` installs it), a throw-away cluster
under /tmp on a free port, trust auth, no fsync. S3: moto's server mode from PyPI (`moto[server]`,
in the dev extra). Both are stopped (by pid) and removed when the test session ends.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

START_SECONDS = 30.0


class ServiceMissing(Exception):
    """The service's software is not installed (and could not be)."""


def _initdb() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1])
    which = shutil.which("initdb")
    return Path(which) if which else None


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; as root, run it as the `postgres` user."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class Postgres:
    root: Path
    bin: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database for one test; returns its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            _as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"),
                          "-m", "immediate", "-w", "stop"]),
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> Postgres:
    initdb = _initdb()
    if initdb is None:
        raise ServiceMissing("PostgreSQL is not installed (make services installs it)")
    root = Path(tempfile.mkdtemp(prefix="pfd-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    server = Postgres(root, initdb.parent, port)
    try:
        subprocess.run(
            _as_postgres([str(initdb), "-D", str(root / "data"), "-U", "postgres",
                          "--auth=trust", "--no-sync", "-E", "UTF8"]),
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip
        options = (
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        subprocess.run(
            _as_postgres([str(initdb.parent / "pg_ctl"), "-D", str(root / "data"), "-o", options,
                          "-l", str(root / "log"), "-w", "-t", "60", "start"]),
            capture_output=True, timeout=90, check=True,
        )  # fmt: skip
    except subprocess.CalledProcessError as error:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        server.stop()
        raise RuntimeError(f"PostgreSQL did not start: {error.stderr!r} {log[-2000:]}") from None
    return server


@dataclass
class S3Endpoint:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip

    def create_bucket(self) -> str:
        name = "pfd-" + uuid.uuid4().hex[:16]
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_moto(log_path: Path) -> S3Endpoint:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ServiceMissing("moto[server] is not installed (it is in the dev extra)") from None
    port = free_port()
    log = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = S3Endpoint(process, port, log_path)
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto server exited: {log_path.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{endpoint.url}/moto-api/", timeout=1)
            return endpoint
        time.sleep(0.1)
    endpoint.stop()
    raise RuntimeError("moto server did not start")
