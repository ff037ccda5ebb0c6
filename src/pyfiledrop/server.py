"""Starting the server: the start-up summary, the listening socket, then uvicorn (uvloop +
httptools when present). "Listening on" is printed only once the socket is bound and listening,
so a script that waits for it can connect at once, and a busy port prints no such line."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette

from pyfiledrop import keepawake, logs, malloc
from pyfiledrop.config import (
    SPECS,
    ConfigError,
    S3Location,
    Settings,
    hide_password,
    load_settings,
)
from pyfiledrop.units import AUTO_CHUNK_COUNT, AUTO_CHUNK_MAX, format_duration, format_size
from pyfiledrop.web.app import create_app
from pyfiledrop.web.http_limits import http_protocol
from pyfiledrop.web.page import auto_chunk_floor

SETTINGS_ENV = "PYFILEDROP_SETTINGS_JSON"
KEEP_ALIVE_SECONDS = 75
LISTEN_BACKLOG = 2048  # uvicorn's default
STARTUP_FAILURE = 3  # uvicorn's exit status when the app can't start
SIOCGIFADDR = 0x8915  # Linux: an interface's IPv4 address


def _chunk_size_text(settings: Settings) -> str:
    if settings.chunk_size:
        return f"{format_size(settings.chunk_size)} (fixed)"
    return (
        f"auto (per file: {format_size(auto_chunk_floor(settings))} to "
        f"{format_size(AUTO_CHUNK_MAX)}, at most {AUTO_CHUNK_COUNT} chunks where it can)"
    )


def summary(settings: Settings) -> str:
    """The article's start-up summary, sizes in the page's units ("Listening" comes later)."""
    lines = [
        f"Timeout: {settings.timeout // 1000} seconds per chunk",
        f"Chunk Size: {_chunk_size_text(settings)}",
        f"Max File Size: {format_size(settings.max_size_bytes)}",
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
    if settings.metrics:
        lines.append("Metrics: /metrics" + (" (password required)" if _protected(settings) else ""))
    if settings.log_format == "json" or not settings.access_log:
        access = "off" if not settings.access_log else "on"
        lines.append(f"Log: {settings.log_format} lines on stderr, access log {access}")
    if settings.keep_awake:
        lines.append("Keep awake: while uploads are in progress")
    return "\n".join(lines)


def _protected(settings: Settings) -> bool:
    return bool(settings.password or settings.tokens)


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


def _url(address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}:{port}/"


def listen_urls(
    host: str,
    port: int,
    ipv4: Callable[[], list[str]] | None = None,
    ipv6: Callable[[], list[str]] | None = None,
) -> list[str]:
    """Where the server can be reached: the address itself, or every local one for a wildcard."""
    if host not in ("0.0.0.0", "::"):
        return [_url(host, port)]
    addresses = list((ipv4 or ipv4_addresses)())
    if host == "::":  # dual-stack on Linux by default: the IPv4 addresses answer too
        addresses += (ipv6 or ipv6_addresses)()
    loopback = [a for a in addresses if ipaddress.ip_address(a).is_loopback]
    others = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    ordered = sorted(set(loopback), key=len) + sorted(set(others), key=_address_order)
    return [_url(address, port) for address in ordered] or [_url(host, port)]


def _address_order(address: str) -> tuple[int, int]:
    parsed = ipaddress.ip_address(address)
    return parsed.version, int(parsed)


def ipv4_addresses() -> list[str]:
    """Every interface's IPv4 address (Linux ioctl), else what the host name resolves to."""
    found = ["127.0.0.1"]
    try:
        import fcntl
        import struct

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            for _, name in socket.if_nameindex():
                request = struct.pack("256s", name.encode()[:15])
                with contextlib.suppress(OSError):
                    answer = fcntl.ioctl(probe.fileno(), SIOCGIFADDR, request)
                    found.append(socket.inet_ntoa(answer[20:24]))
        return found
    except (ImportError, OSError, AttributeError):
        pass
    with contextlib.suppress(OSError):
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        found += [str(info[4][0]) for info in infos]
    return found


def ipv6_addresses() -> list[str]:
    """Global and loopback IPv6 addresses (link-local ones need a zone: no use in a link)."""
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[3] in ("00", "10"):  # global, host (loopback)
            found.append(str(ipaddress.IPv6Address(int(fields[0], 16))))
    return found


def bind(settings: Settings) -> socket.socket:
    """The listening socket, before uvicorn starts: a busy port is one line, not a traceback."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(LISTEN_BACKLOG)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise ConfigError(
            f"--host {settings.host} --port {settings.port}: can't listen there ({reason})"
        ) from None
    sock.set_inheritable(True)
    return sock


def app_from_environment() -> Starlette:
    """Factory for worker processes: the parent validated the settings and passes them on."""
    malloc.limit_arenas()
    values = json.loads(os.environ[SETTINGS_ENV])
    flags = {spec.name: values[spec.name] for spec in SPECS if values.get(spec.name) is not None}
    settings = load_settings(flags, environ={}, cwd=Path.cwd()).settings
    logs.configure(settings.log_format)
    return create_app(settings)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return dict(
        host=settings.host,
        port=settings.port,
        loop="auto",
        http=http_protocol,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,  # web/proxy.py decides whom to believe, from --trusted-proxy
    )


def serve(settings: Settings) -> None:
    malloc.limit_arenas()
    logs.configure(settings.log_format)
    print(summary(settings), flush=True)
    warning = exposure_warning(settings)
    if warning:
        logging.getLogger("pyfiledrop").warning(warning)
    if settings.keep_awake and not keepawake.check_at_start():
        settings = dataclasses.replace(settings, keep_awake=False)  # warned once; runs on
    sock = bind(settings)
    port = int(sock.getsockname()[1])
    print("\n".join(f"Listening on {url}" for url in listen_urls(settings.host, port)), flush=True)
    options = uvicorn_options(settings)
    server: uvicorn.Server | None = None
    try:
        if settings.workers > 1:
            os.environ[SETTINGS_ENV] = json.dumps(_settings_as_json(settings))
            config = uvicorn.Config(
                "pyfiledrop.server:app_from_environment", factory=True, workers=settings.workers,
                **options,
            )  # fmt: skip
            from uvicorn.supervisors import Multiprocess

            Multiprocess(config, sockets=[sock]).run()
        else:
            config = uvicorn.Config(create_app(settings), **options)
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        sys.stdout.flush()
    if server is not None and not server.started:
        sys.exit(STARTUP_FAILURE)


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
