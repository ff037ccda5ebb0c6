"""Starting the server: the start-up summary, then uvicorn (uvloop + httptools when present)."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import socket
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from pyfiledrop.config import SPECS, S3Location, Settings, hide_password, load_settings
from pyfiledrop.units import format_duration, format_size
from pyfiledrop.web.app import create_app
from pyfiledrop.web.http_limits import BoundedHttpToolsProtocol

SETTINGS_ENV = "PYFILEDROP_SETTINGS_JSON"
KEEP_ALIVE_SECONDS = 75


def summary(settings: Settings) -> str:
    """The article's start-up summary, plus where to reach the server."""
    lines = [
        f"Timeout: {settings.timeout // 1000} seconds per chunk",
        f"Chunk Size: {settings.chunk_size // 1024} Kb",
        f"Max File Size: {settings.max_size} Mb",
        f"Force Chunking: {str(settings.force_chunking).lower()}",
        f"Parallel Chunks: {str(settings.parallel_chunks).lower()}"
        + (f" ({settings.chunks_in_flight} in flight)" if settings.parallel_chunks else ""),
        f"Storage Path: {_storage_text(settings)}",
        f"Chunk Path: {settings.chunks.absolute()}",
        f"Data Path: {settings.data.absolute()}",
        f"Downloads: {'allowed' if settings.allow_downloads else 'disabled (-a to allow)'}",
        f"Flush to disk: {'on' if settings.fsync else 'off (--no-fsync)'}",
    ]
    if not isinstance(settings.storage, S3Location):
        lines.append(
            f"Free space: {format_size(_free_bytes(settings.storage))}"
            f" (keeping {format_size(settings.min_free)} free)"
        )
    lines += _lifecycle_lines(settings)
    if settings.database is not None:
        lines.append(f"Database: {hide_password(settings.database)}")
    lines += [f"Listening on {url}" for url in listen_urls(settings)]
    return "\n".join(lines)


def _lifecycle_lines(settings: Settings) -> list[str]:
    life = format_duration(settings.expire_after) if settings.expire_after else "never"
    lines = [f"Files expire after: {life}"]
    for name, quota in (("Quota", settings.quota), ("Quota per owner", settings.owner_quota)):
        if quota is not None:
            lines.append(f"{name}: {format_size(quota)}")
    if settings.password or settings.tokens:
        lines.append("Password: required for the page, uploads and the API")
    return lines


def _storage_text(settings: Settings) -> str:
    if isinstance(settings.storage, S3Location):
        endpoint = settings.s3_endpoint or "AWS"
        presign = ", downloads by presigned URL" if settings.s3_presign else ""
        return f"{settings.storage} (at {endpoint}{presign})"
    return str(settings.storage.absolute())


def _free_bytes(folder: Path) -> int:
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def exposure_warning(settings: Settings) -> str | None:
    """Bound beyond loopback with no `allowed_hosts`: any domain pointed at this server (DNS
    rebinding) reaches it as if it were its own."""
    loopback = settings.host in ("localhost", "::1") or settings.host.startswith("127.")
    if loopback or settings.allowed_hosts:
        return None
    return (
        f"listening on {settings.host} without --allowed-host: pages on any domain that resolves"
        " here can use this server (DNS rebinding); name the host names clients use"
    )


def listen_urls(settings: Settings) -> list[str]:
    if settings.host not in ("0.0.0.0", "::"):
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        return [f"http://{host}:{settings.port}/"]
    urls = [f"http://127.0.0.1:{settings.port}/"]
    try:
        name = socket.gethostname()
        for address in sorted(
            {info[4][0] for info in socket.getaddrinfo(name, None, socket.AF_INET)}
        ):
            if not str(address).startswith("127."):
                urls.append(f"http://{address}:{settings.port}/")
    except OSError:
        pass
    return urls


def app_from_environment() -> Starlette:
    """Factory for worker processes: the parent validated the settings and passes them on."""
    _limit_malloc_arenas()
    values = json.loads(os.environ[SETTINGS_ENV])
    flags = {spec.name: values[spec.name] for spec in SPECS if values.get(spec.name) is not None}
    return create_app(load_settings(flags, environ={}, cwd=Path.cwd()).settings)


def _limit_malloc_arenas() -> None:
    """glibc gives busy threads their own malloc arenas, each keeping freed memory; with many
    uploads at once that retention dominated the server's RSS. Two arenas are plenty here."""
    m_arena_max = -8
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(ctypes.util.find_library("c") or None).mallopt(m_arena_max, 2)


def serve(settings: Settings) -> None:
    _limit_malloc_arenas()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(summary(settings), flush=True)
    warning = exposure_warning(settings)
    if warning:
        logging.getLogger("pyfiledrop").warning(warning)
    options = dict(
        host=settings.host,
        port=settings.port,
        loop="auto",
        http=BoundedHttpToolsProtocol,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = json.dumps(_settings_as_json(settings))
        uvicorn.run(
            "pyfiledrop.server:app_from_environment", factory=True, workers=settings.workers,
            **options,  # type: ignore[arg-type]
        )  # fmt: skip
    else:
        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]
    sys.stdout.flush()


def _settings_as_json(settings: Settings) -> dict[str, object]:
    values: dict[str, object] = {}
    for spec in SPECS:
        value = getattr(settings, spec.name)
        if isinstance(value, Path | S3Location):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        values[spec.name] = value
    return values
