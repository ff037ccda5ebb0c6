"""Settings: one table of what can be set, read from flags, environment and a TOML file.

Precedence is flag > environment (`PYFILEDROP_<NAME>`) > file > default. Everything is validated
once, at start, and a bad value is reported by name with what is allowed (`ConfigError`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyfiledrop.meta import SQLITE_FILE
from pyfiledrop.units import SIZE_RULE, format_duration, format_size, parse_duration, parse_size

DEFAULT_CONFIG_FILE = "pyfiledrop.toml"
ENV_PREFIX = "PYFILEDROP_"
MIB = 1024 * 1024


S3_MIN_PART_BYTES = 5 * MIB  # S3 refuses smaller parts (except the last) at completion


class ConfigError(Exception):
    """A setting that can't be used; the message names it and says what is allowed."""


@dataclass(frozen=True)
class S3Location:
    """`--storage s3://bucket/prefix`: finished files are objects under the prefix."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


# An upload in progress holds space for its unwritten bytes (disk guard, quotas) only while a
# chunk arrived within this window; then it is admitted again when it resumes (issue 12).
RESERVE_IDLE_SECONDS = 5 * 60


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 16273
    storage: Path | S3Location = Path("storage")
    chunks: Path = Path("chunks")
    data: Path = Path("data")
    max_size: int = 100000  # MiB, as in the article
    timeout: int = 120000  # ms per chunk, handed to Dropzone
    chunk_size: int | None = None  # bytes (the article's 1000000); None: auto, chosen per file
    parallel_chunks: bool = True
    chunks_in_flight: int = 4
    force_chunking: bool = True
    allow_downloads: bool = False
    dz_cdn: str | None = None
    dz_version: str | None = None
    index: Path | None = None
    fsync: bool = True
    abandon_after: int = 24 * 3600  # seconds a partial upload may stay idle
    reserve_idle: int = RESERVE_IDLE_SECONDS  # seconds an idle upload still holds its space
    cors_origins: tuple[str, ...] = ()
    # Peers whose X-Forwarded-For/-Proto/-Host are believed (a reverse proxy); loopback only.
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    workers: int = 1
    database: str | None = None  # None: SQLite in `data`; else a postgresql:// URL
    expire_after: int | None = None  # seconds a published file stays; None: forever
    min_free: int = 1024**3  # bytes to keep free on the storage filesystem
    quota: int | None = None  # bytes all stored files and uploads in progress may take
    owner_quota: int | None = None  # the same, per owner
    password: str | None = None  # protects the page, uploads and the API
    tokens: tuple[str, ...] = ()  # more secrets that do the same (config file or environment)
    s3_endpoint: str | None = None  # MinIO, R2, Ceph...; None: AWS
    s3_region: str | None = None
    s3_access_key: str | None = None  # else the standard AWS_* variables and files
    s3_secret_key: str | None = None
    s3_presign: bool = False  # downloads redirect to presigned URLs instead of passing through
    metrics: bool = False  # serve Prometheus metrics at /metrics
    access_log: bool = True  # one line per request
    log_format: str = "text"  # or "json": one JSON object per line
    keep_awake: bool = False  # keep the host from sleeping while uploads are in progress
    public_url: str | None = None  # how people reach the server (behind a proxy); None: as asked
    retry_for: int = 300  # seconds the page keeps retrying a failed chunk before giving up
    min_rate: int = 1024  # bytes/s a request body must average over min_rate_window; 0: off
    min_rate_window: int = 60  # seconds
    uploads_per_owner: int = 100  # uploads in progress at once, per owner; 0: no limit
    uploads_per_address: int = 300  # the same, per client address; 0: no limit
    allowed_hosts: tuple[str, ...] = ()  # Host header values served; empty: any

    @property
    def local_storage(self) -> Path:
        """The storage folder; only for local-disk storage."""
        if isinstance(self.storage, S3Location):
            raise ValueError("storage is an S3 bucket, not a folder")
        return self.storage

    @property
    def max_size_bytes(self) -> int:
        return self.max_size * MIB

    @property
    def db_path(self) -> Path:
        return self.data / SQLITE_FILE


FlagKind = Literal["value", "store_true", "store_false", "append"]


@dataclass(frozen=True)
class Spec:
    name: str
    parse: Callable[[Any], Any]
    allowed: str
    help: str
    flags: tuple[str, ...] = ()
    kind: FlagKind = "value"
    metavar: str | None = None


def _positive_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    number = int(value)  # "12.5", "abc" raise ValueError
    if number < 1:
        raise ValueError
    return number


def _int_in(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        number = _positive_int(value) if low >= 1 else int(value)
        if not low <= number <= high:
            raise ValueError
        return number

    return parse


def _positive_size(value: Any) -> int:
    size = parse_size(value)
    if size < 1:
        raise ValueError
    return size


def _chunk_size(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _positive_size(value)


def _positive_duration(value: Any) -> int:
    seconds = parse_duration(value)
    if seconds < 1:
        raise ValueError
    return seconds


def _optional_duration(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("never", "none", "0", ""):
        return None
    return _positive_duration(value)


def _size(value: Any) -> int:
    size = parse_size(value)
    if size < 0:
        raise ValueError
    return size


def _optional_size(value: Any) -> int | None:
    if value is None or str(value).strip().lower() in ("none", "unlimited", ""):
        return None
    return _positive_size(value)


def _secrets(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    if not all(isinstance(item, str) for item in items):
        raise ValueError
    return tuple(item.strip() for item in items if item.strip())


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip()


def _optional_text(value: Any) -> str | None:
    return None if value is None else _text(value)


def _public_url(value: Any) -> str | None:
    """An http(s) origin, maybe with a path prefix; kept without its trailing slash."""
    if value is None:
        return None
    url = _text(value).rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ValueError
    return url


def _path(value: Any) -> Path:
    return Path(_text(value)).expanduser()


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _storage(value: Any) -> Path | S3Location:
    text = _text(value)
    if not text.startswith("s3://"):
        return _path(text)
    bucket, _, prefix = text[len("s3://") :].partition("/")
    if not _BUCKET.match(bucket) or ".." in prefix.split("/"):
        raise ValueError
    return S3Location(bucket, prefix.strip("/"))


def _url(value: Any) -> str | None:
    if value is None:
        return None
    url = _text(value)
    if not url.startswith(("http://", "https://")):
        raise ValueError
    return url.rstrip("/")


def _optional_file(value: Any) -> Path | None:
    if value is None:
        return None
    path = _path(value)
    if not path.is_file():
        raise ValueError
    return path


def _origins(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    origins = tuple(str(item).strip().rstrip("/") for item in items if str(item).strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError
    return origins


def _networks(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    texts = [str(item).strip() for item in items if str(item).strip()]
    if texts in (["none"], ["None"]):
        return ()
    return tuple(str(ipaddress.ip_network(text, strict=False)) for text in texts)


_HOST = re.compile(r"^(\*\.)?[a-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9a-f:.]+\](:[0-9]{1,5})?$")


def _hosts(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    hosts = tuple(str(item).strip().lower() for item in items if str(item).strip())
    if not all(_HOST.match(host) for host in hosts):
        raise ValueError
    return hosts


def _database_url(value: Any) -> str | None:
    if value is None:
        return None
    url = _text(value)
    if not url.startswith(("postgresql://", "postgres://")):
        raise ValueError
    return url


def hide_password(url: str) -> str:
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


SPECS: tuple[Spec, ...] = (
    Spec(
        "port",
        _int_in(1, 65535),
        "an integer from 1 to 65535",
        "port to listen on",
        ("-p", "--port"),
    ),
    Spec("host", _text, "a host name or address", "address to listen on", ("--host",)),
    Spec(
        "storage",
        _storage,
        "a folder path, or s3://bucket/prefix",
        "folder (or S3 bucket and prefix) for finished files",
        ("-s", "--storage"),
    ),
    Spec("chunks", _path, "a folder path", "folder for partial uploads", ("-c", "--chunks")),
    Spec("data", _path, "a folder path", "folder for the metadata database", ("--data",)),
    Spec(
        "max_size",
        _positive_int,
        "a positive integer (MiB)",
        "max file size (MiB)",
        ("--max-size",),
        metavar="MIB",
    ),
    Spec(
        "timeout",
        _positive_int,
        "a positive integer (ms)",
        "timeout (ms) for each chunk upload",
        ("--timeout",),
        metavar="MS",
    ),
    Spec(
        "chunk_size",
        _chunk_size,
        f"auto, or a positive size in bytes (or with a unit: {SIZE_RULE})",
        "chunk size the page uses: auto (default: 1 MiB to 64 MiB per file), or a fixed size:"
        f" bytes, or 8MiB, 500k ({SIZE_RULE})",
        ("--chunk-size",),
        metavar="BYTES|auto",
    ),
    Spec(
        "parallel_chunks",
        _bool,
        "true or false",
        "the page sends each file's chunks one at a time"
        " (default: --chunks-in-flight of them at once)",
        ("--disable-parallel-chunks",),
        "store_false",
    ),
    Spec(
        "chunks_in_flight",
        _int_in(1, 64),
        "an integer from 1 to 64",
        "chunks of one file in flight at once from the page",
        ("--chunks-in-flight",),
        metavar="N",
    ),
    Spec(
        "force_chunking",
        _bool,
        "true or false",
        "the page sends files smaller than a chunk in one request"
        " (default: every file in chunks, so it can resume)",
        ("--disable-force-chunking",),
        "store_false",
    ),
    Spec(
        "allow_downloads",
        _bool,
        "true or false",
        "serve download links",
        ("-a", "--allow-downloads"),
        "store_true",
    ),
    Spec(
        "dz_cdn",
        _optional_text,
        "a URL",
        "load Dropzone from this CDN instead of the server",
        ("--dz-cdn",),
        metavar="URL",
    ),
    Spec(
        "dz_version",
        _optional_text,
        "a version such as 6.3.5",
        "Dropzone version on the CDN",
        ("--dz-version",),
        metavar="VERSION",
    ),
    Spec(
        "index",
        _optional_file,
        "an existing file",
        "serve this page instead of the built-in one",
        ("--index",),
        metavar="FILE",
    ),
    Spec(
        "fsync",
        _bool,
        "true or false",
        "answer before a finished file is flushed to disk: faster, but a power cut may lose"
        " files already reported done (default: flush first)",
        ("--no-fsync",),
        "store_false",
    ),
    Spec(
        "abandon_after",
        _positive_duration,
        "a duration such as 24h, 90m or 7d",
        "remove partial uploads idle this long",
        ("--abandon-after",),
        metavar="DURATION",
    ),
    Spec(
        "reserve_idle",
        _positive_duration,
        "a duration such as 5m or 300s",
        "an upload idle this long stops holding space; admitted again when it resumes",
        ("--reserve-idle",),
        metavar="DURATION",
    ),
    Spec(
        "cors_origins",
        _origins,
        "origins such as https://example.org, or *",
        "let pages of this origin call the server, with the visitor's cookies (repeat for more;"
        " '*': any origin, without cookies; default: none)",
        ("--cors-origin",),
        "append",
        metavar="ORIGIN",
    ),
    Spec(
        "trusted_proxies",
        _networks,
        "addresses or CIDRs such as 10.0.0.5 or 10.0.0.0/24, or none",
        "believe X-Forwarded-For/-Proto/-Host only from these peers (default: loopback)",
        ("--trusted-proxy",),
        "append",
        metavar="ADDRESS",
    ),
    Spec(
        "workers",
        _int_in(1, 64),
        "an integer from 1 to 64",
        "server processes",
        ("--workers",),
        metavar="N",
    ),
    Spec(
        "database",
        _database_url,
        "a postgresql://user:password@host/db URL",
        "PostgreSQL for metadata shared by several processes (default: SQLite in --data)",
        ("--database",),
        metavar="URL",
    ),
    Spec(
        "s3_endpoint",
        _url,
        "an http(s):// URL",
        "S3-compatible endpoint (MinIO, R2, Ceph...; default: AWS)",
        ("--s3-endpoint",),
        metavar="URL",
    ),
    Spec("s3_region", _optional_text, "a region name", "S3 region", ("--s3-region",)),
    Spec("s3_access_key", _optional_text, "an access key id", "S3 access key (else AWS_*)"),
    Spec("s3_secret_key", _optional_text, "a secret key", "S3 secret key (else AWS_*)"),
    Spec(
        "s3_presign",
        _bool,
        "true or false",
        "downloads redirect to presigned S3 URLs instead of streaming through the server",
        ("--s3-presign",),
        "store_true",
    ),
)
# Lifecycle and limits: expiry, disk guard, quotas, who may upload.
SPECS += (
    Spec(
        "expire_after",
        _optional_duration,
        "a duration such as 12h or 7d, or never",
        "delete published files this long after upload (default: never)",
        ("--expire-after",),
        metavar="DURATION",
    ),
    Spec(
        "min_free",
        _size,
        f"a size such as 1GiB or 500MB, 0 to turn off ({SIZE_RULE})",
        f"refuse new uploads that would leave less free space than this ({SIZE_RULE};"
        " default 1GiB)",
        ("--min-free",),
        metavar="SIZE",
    ),
    Spec(
        "quota",
        _optional_size,
        f"a size such as 500GiB ({SIZE_RULE})",
        f"most bytes all stored files may take ({SIZE_RULE}; default: no limit)",
        ("--quota",),
        metavar="SIZE",
    ),
    Spec(
        "owner_quota",
        _optional_size,
        f"a size such as 10GiB ({SIZE_RULE})",
        f"most bytes each owner's files may take ({SIZE_RULE}; default: no limit)",
        ("--owner-quota",),
        metavar="SIZE",
    ),
    Spec(
        "password",
        _optional_text,
        "a non-empty text",
        "require this password for the page, uploads and the API",
        ("--password",),
        metavar="PASSWORD",
    ),
    Spec(
        "tokens",
        _secrets,
        "a list of texts (TOML array, or comma-separated in the environment)",
        "more secrets accepted like the password (config file or environment only)",
    ),
    Spec(
        "public_url",
        _public_url,
        "an http:// or https:// URL such as https://files.example.org",
        "the address people use to reach this server: the base of every absolute URL it writes"
        " (links, tus Location; default: as asked)",
        ("--public-url",),
        metavar="URL",
    ),
    Spec(
        "retry_for",
        _positive_duration,
        "a duration such as 5m, 90s or 1h",
        "how long the page keeps retrying a failed chunk (server restart, lost connection)",
        ("--retry-for",),
        metavar="DURATION",
    ),
)
# Watching it: metrics, logs, and the host's sleep.
LOG_FORMATS = ("text", "json")


def _log_format(value: Any) -> str:
    text = _text(value).lower()
    if text not in LOG_FORMATS:
        raise ValueError
    return text


SPECS += (
    Spec(
        "metrics",
        _bool,
        "true or false",
        "serve Prometheus metrics at /metrics (behind the password when one is set)",
        ("--metrics",),
        "store_true",
    ),
    Spec(
        "access_log",
        _bool,
        "true or false",
        "log one line per request (method, path without secrets, status, bytes, time)",
        ("--no-access-log",),
        "store_false",
    ),
    Spec(
        "log_format",
        _log_format,
        "text or json",
        "log as plain text lines or as JSON lines",
        ("--log-format",),
        metavar="FORMAT",
    ),
    Spec(
        "keep_awake",
        _bool,
        "true or false",
        "keep this machine from sleeping while uploads are in progress",
        ("--keep-awake",),
        "store_true",
    ),
)
# Hostile clients: slow bodies, floods of uploads, DNS rebinding.
SPECS += (
    Spec(
        "min_rate",
        _size,
        "a size per second such as 1KiB (0 to turn off)",
        "cut off a request body slower than this on average over --min-rate-window (default 1KiB)",
        ("--min-rate",),
        metavar="SIZE",
    ),
    Spec(
        "min_rate_window",
        _int_in(1, 3600),
        "seconds from 1 to 3600",
        "the window --min-rate is averaged over (default 60)",
        ("--min-rate-window",),
        metavar="SECONDS",
    ),
    Spec(
        "uploads_per_owner",
        _int_in(0, 1_000_000),
        "an integer, 0 for no limit",
        "uploads in progress at once per owner; more are refused with 429 (default 100)",
        ("--uploads-per-owner",),
        metavar="N",
    ),
    Spec(
        "uploads_per_address",
        _int_in(0, 1_000_000),
        "an integer, 0 for no limit",
        "uploads in progress at once per client address; more are refused with 429 (default 300)",
        ("--uploads-per-address",),
        metavar="N",
    ),
    Spec(
        "allowed_hosts",
        _hosts,
        "host names such as files.example.org (or host:port)",
        "answer only requests whose Host is one of these (default: any; see DNS rebinding)",
        ("--allowed-host",),
        "append",
        metavar="HOST",
    ),
)
SPEC_BY_NAME = {spec.name: spec for spec in SPECS}
SECRET_SETTINGS = ("password", "tokens", "s3_secret_key")


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting. Defaults are SUPPRESSed so we can tell what was really given."""
    parser.add_argument(
        "--config", metavar="FILE", help=f"TOML settings file (default: ./{DEFAULT_CONFIG_FILE})"
    )
    for spec in SPECS:
        if not spec.flags:
            continue
        if spec.kind == "value":
            parser.add_argument(
                *spec.flags, dest=spec.name, default=argparse.SUPPRESS, help=spec.help,
                metavar=spec.metavar,
            )  # fmt: skip
        elif spec.kind == "append":
            parser.add_argument(
                *spec.flags, dest=spec.name, action="append", default=argparse.SUPPRESS,
                help=spec.help, metavar=spec.metavar,
            )  # fmt: skip
        else:
            parser.add_argument(
                *spec.flags, dest=spec.name, action=spec.kind, default=argparse.SUPPRESS,
                help=spec.help,
            )  # fmt: skip


def _parse(spec: Spec, value: Any, where: str) -> Any:
    try:
        return spec.parse(value)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: {value!r} is not allowed; expected {spec.allowed}") from None


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path}: not valid TOML ({error})") from None


@dataclass(frozen=True)
class LoadedSettings:
    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)


def load_settings(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> LoadedSettings:
    """Merge flags (already parsed by argparse), environment, config file and defaults."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    config_name = flags.get("config") or environ.get(ENV_PREFIX + "CONFIG")
    config_path = Path(config_name) if config_name else cwd / DEFAULT_CONFIG_FILE
    if config_name or config_path.is_file():
        for key, value in _read_config_file(config_path).items():
            name = key.replace("-", "_")
            spec = SPEC_BY_NAME.get(name)
            if spec is None:
                known = ", ".join(s.name for s in SPECS)
                raise ConfigError(
                    f"config file {config_path}: unknown setting {key!r} (known: {known})"
                )
            values[name] = _parse(spec, value, f"{key} in {config_path}")
            sources[name] = f"file {config_path}"

    for variable, value in environ.items():
        if not variable.startswith(ENV_PREFIX) or variable == ENV_PREFIX + "CONFIG":
            continue
        name = variable[len(ENV_PREFIX) :].lower()
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            continue  # other tools' PYFILEDROP_* (e.g. the uploader's) are not server settings
        values[name] = _parse(spec, value, variable)
        sources[name] = f"environment {variable}"

    for name, value in flags.items():
        spec = SPEC_BY_NAME.get(name)
        if spec is None:
            continue
        flag = spec.flags[-1] if spec.flags else name  # file-only settings, handed to workers
        values[name] = (
            _parse(spec, value, flag) if spec.kind in ("value", "append") else spec.parse(value)
        )
        sources[name] = f"flag {flag}"

    settings = Settings(**values)
    for spec in SPECS:
        sources.setdefault(spec.name, "default")
    return LoadedSettings(settings, sources)


def prepare_folders(settings: Settings) -> None:
    """Create the folders and prove they are writable; partial and final must share a filesystem."""
    if isinstance(settings.storage, S3Location):
        check_s3(settings)
    names = (
        ("chunks", "data")
        if isinstance(settings.storage, S3Location)
        else ("storage", "chunks", "data")
    )
    for name in names:
        folder: Path = getattr(settings, name)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / ".pyfiledrop-write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigError(
                f"--{name} {folder}: can't be created or written ({reason})"
            ) from None
    if isinstance(settings.storage, S3Location):
        return
    if settings.storage.stat().st_dev != settings.chunks.stat().st_dev:
        raise ConfigError(
            f"--chunks {settings.chunks} must be on the same filesystem as --storage "
            f"{settings.storage}, so a finished file is published by one atomic rename"
        )


def check_s3(settings: Settings) -> None:
    """Object storage needs chunks of at least one S3 part; say so at start, not mid-upload."""
    if settings.chunk_size is not None and settings.chunk_size < S3_MIN_PART_BYTES:
        raise ConfigError(
            f"--chunk-size {settings.chunk_size}: with --storage {settings.storage} each chunk is "
            f"one S3 multipart part, and S3 refuses parts under 5 MiB ({S3_MIN_PART_BYTES} bytes);"
            " use --chunk-size 8MiB or more"
        )


def describe_settings(settings: Settings, sources: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(name, value, source) rows for `pyfiledrop config`."""
    rows = []
    for spec in SPECS:
        value = getattr(settings, spec.name)
        if spec.name in SECRET_SETTINGS:
            shown = "(set)" if value else "(none)"
        elif (
            spec.name in ("abandon_after", "expire_after", "retry_for", "reserve_idle")
            and value is not None
        ):
            shown = format_duration(value)
        elif spec.name in ("min_free", "quota", "owner_quota") and value is not None:
            shown = format_size(value)
        elif isinstance(value, tuple):
            shown = ", ".join(value) or "(none)"
        elif value is None:
            shown = "auto" if spec.name == "chunk_size" else "(none)"
        elif spec.name == "database":
            shown = hide_password(value)
        else:
            shown = str(value).lower() if isinstance(value, bool) else str(value)
        rows.append((spec.name, shown, sources.get(spec.name, "default")))
    return rows
