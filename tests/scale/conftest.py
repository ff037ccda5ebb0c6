"""Backends for the scale-out tests: local disk + SQLite, local disk + PostgreSQL, S3 + PostgreSQL.

`backend` is parametrized over the three; `backend.start(*flags)` starts a real `pyfiledrop serve`
on it, and `backend.leftovers()` lists what must be gone once uploads are finished or discarded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory
from tests.services import S3Endpoint

BACKENDS = ["disk+sqlite", "disk+postgres", "s3+postgres"]


@dataclass
class Backend:
    name: str
    factory: ServerFactory
    database: str | None = None
    s3: S3Endpoint | None = None
    bucket: str | None = None
    servers: list[Server] = field(default_factory=list)

    def flags(self) -> list[str]:
        flags: list[str] = []
        if self.database:
            flags += ["--database", self.database]
        if self.s3 is not None:
            flags += ["--storage", f"s3://{self.bucket}/files", "--s3-endpoint", self.s3.url]
            flags += ["--chunk-size", "5MiB"]
        return flags

    def env(self) -> dict[str, str]:
        if self.s3 is None:
            return {}
        return {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def start(self, *flags: str, start: bool = True) -> Server:
        server = self.factory(*self.flags(), *flags, env=self.env(), start=start)
        self.servers.append(server)
        return server

    def s3_client(self) -> Any:
        assert self.s3 is not None
        return self.s3.client()

    def objects(self) -> list[str]:
        """Keys in the bucket (S3), or files in the first server's storage folder (disk)."""
        if self.s3 is None:
            return sorted(p.name for p in self.servers[0].storage_dir.iterdir())
        listing = self.s3_client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def leftovers(self) -> list[str]:
        """Partial uploads still holding bytes: `.part` files, or S3 multipart uploads."""
        if self.s3 is None:
            return sorted(p.name for s in self.servers for p in s.chunks_dir.iterdir())
        listing = self.s3_client().list_multipart_uploads(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Uploads", []))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, server_factory: ServerFactory) -> Backend:
    name: str = request.param
    found = Backend(name, server_factory)
    if "postgres" in name:
        found.database = request.getfixturevalue("postgres_url")
    if name.startswith("s3"):
        found.s3 = request.getfixturevalue("s3_endpoint")
        found.bucket = found.s3.create_bucket()
    return found


BackendStarter = Callable[..., Server]
