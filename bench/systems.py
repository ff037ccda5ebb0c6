"""The systems under test: how to start each server and how to upload one file to it.

Every server runs fresh for each trial in its own work folder on the same disk as the source file,
bound to 127.0.0.1 only. A setting is one (server, client command) pair; `dd` has no server and
stands for the disk's own speed with a flush.
"""

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.deploy_nginx import deploy_block, local_config, nginx_binary
from bench.units import MIB, format_size

REPO = Path(__file__).resolve().parent.parent
PEERS_BIN = REPO / "bench" / ".peers" / "bin"
# BENCH_PYFILEDROP_BIN benchmarks another install (a branch, an older release) instead.
PYFILEDROP_BIN = Path(os.environ.get("BENCH_PYFILEDROP_BIN", REPO / ".venv" / "bin"))
NGINX_CONF = Path(__file__).resolve().parent / "nginx.conf"
BEHIND_NGINX = Path(__file__).resolve().parent / "behind_nginx.py"

# What the page uses by default: `--chunk-size auto` (per file, the smallest power of two from
# 1 MiB to 64 MiB that keeps it within 128 chunks; src/pyfiledrop/units.py, restated here so the
# harness can time any install) and the core's chunks in flight.
PAGE_AUTO_MIN = 1024**2
PAGE_AUTO_MAX = 64 * 1024**2
PAGE_AUTO_COUNT = 128
PAGE_IN_FLIGHT = 4
PAGE_DEFAULT = f"page default (auto) x{PAGE_IN_FLIGHT}"


def page_chunk_size(file_size: int) -> int:
    chunk = PAGE_AUTO_MIN
    while chunk < PAGE_AUTO_MAX and chunk * PAGE_AUTO_COUNT < file_size:
        chunk *= 2
    return chunk


@dataclass(frozen=True)
class Trial:
    """Where one trial happens: the source file, the server's folder and its URL."""

    source: Path
    workdir: Path
    port: int
    upstream_port: int = 0  # a server behind a proxy listens here; the proxy on port
    fetch_url: str = ""  # download settings: where the seeded file is served (Setting.seed)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.workdir / "storage"


def _nothing_to_prepare(trial: Trial) -> None:
    pass


@dataclass(frozen=True)
class Server:
    name: str
    command: Callable[[Trial], list[str]]
    health_path: str = "/"
    prepare: Callable[[Trial], None] = _nothing_to_prepare  # writes config files, makes folders
    needs: tuple[str, ...] = ()  # programs it runs besides its command's first word


@dataclass(frozen=True)
class Setting:
    system: str  # what the chart groups by: "pyfiledrop Dropzone", "nginx PUT", ...
    label: str  # the knobs: "8MiB x4", "bs=8MiB"
    flush: bool  # is the file on disk (fdatasync/fsync) before the client hears "done"?
    server: Server | None
    client: Callable[[Trial], list[str]]
    # Untimed, once the server answers and before the client runs: puts in place what the client
    # fetches (downloads) and returns its URL, which the client reads from Trial.fetch_url.
    seed: Callable[[Trial], str] | None = None
    # The file checked against the source once the client is done; None: the upload under its
    # own name in the server's storage folder (or the one file there of the right size).
    output: Callable[[Trial], Path | None] | None = None
    needs: tuple[str, ...] = ()  # files or programs the client needs besides its first word

    @property
    def key(self) -> str:
        return f"{self.system} | {self.label}"


def _nginx_prepare(trial: Trial) -> None:
    prefix = trial.workdir / "nginx"
    (prefix / "body-temp").mkdir(parents=True)
    config = NGINX_CONF.read_text()
    for name, value in (
        ("PREFIX", str(prefix)),
        ("PORT", str(trial.port)),
        ("ROOT", str(trial.storage)),
    ):
        config = config.replace(f"@{name}@", value)
    (prefix / "nginx.conf").write_text(config)


def _nginx_command(trial: Trial) -> list[str]:
    prefix = trial.workdir / "nginx"
    return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", "stderr"]


def _copyparty_command(trial: Trial) -> list[str]:
    # One read-write volume at / for everyone (no accounts), quiet, no thumbnailer;
    # the up2k registry lives in the volume's .hist (no -e2d database: copyparty's default).
    return [
        str(PEERS_BIN / "copyparty"),
        *("-i", "127.0.0.1", "-p", str(trial.port), "-q", "--no-thumb"),
        *("-v", f"{trial.storage}:/:rw"),
    ]


def _uploadserver_command(trial: Trial) -> list[str]:
    return [
        str(PEERS_BIN / "python"),
        *("-m", "uploadserver", str(trial.port), "--bind", "127.0.0.1"),
        *("--directory", str(trial.storage)),
    ]


def _pyfiledrop_command(fsync: bool, *extra: str) -> Callable[[Trial], list[str]]:
    def command(trial: Trial) -> list[str]:
        return [
            str(PYFILEDROP_BIN / "pyfiledrop"),
            "serve",
            *("--host", "127.0.0.1", "-p", str(trial.port)),
            *("-s", str(trial.storage), "-c", str(trial.workdir / "chunks")),
            *("--data", str(trial.workdir / "data"), "--max-size", "1048576"),
            *([] if fsync else ["--no-fsync"]),
            *extra,
        ]

    return command


def _deploy_nginx_prepare(trial: Trial) -> None:
    prefix = trial.workdir / "nginx"
    prefix.mkdir(parents=True)
    config = local_config(
        deploy_block(), prefix, trial.port, trial.upstream_port, workers="auto", error_log="stderr"
    )
    (prefix / "nginx.conf").write_text(config)


def _behind_deploy_nginx(
    server: Callable[[Trial], list[str]], health_path: str
) -> Callable[[Trial], list[str]]:
    """server on trial.upstream_port, then nginx with DEPLOY.md's block on trial.port."""

    def command(trial: Trial) -> list[str]:
        prefix = trial.workdir / "nginx"
        nginx = [nginx_binary() or "nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf")]
        return [
            *(sys.executable, str(BEHIND_NGINX), str(trial.upstream_port), health_path),
            *(*nginx, "-e", "stderr", "--"),
            *server(replace(trial, port=trial.upstream_port)),
        ]

    return command


NGINX = Server("nginx", _nginx_command, prepare=_nginx_prepare)
COPYPARTY = Server("copyparty", _copyparty_command)
UPLOADSERVER = Server("uploadserver", _uploadserver_command)
PYFILEDROP = Server("pyfiledrop", _pyfiledrop_command(fsync=True), "/healthz")
PYFILEDROP_NO_FSYNC = Server("pyfiledrop --no-fsync", _pyfiledrop_command(fsync=False), "/healthz")
PYFILEDROP_SERVING = Server(
    "pyfiledrop --allow-downloads", _pyfiledrop_command(True, "--allow-downloads"), "/healthz"
)
# docs/DEPLOY.md's nginx block (listen and upstream made local) in front of pyfiledrop.
PYFILEDROP_VIA_NGINX = Server(
    "nginx (DEPLOY.md) + pyfiledrop --no-fsync",
    _behind_deploy_nginx(_pyfiledrop_command(fsync=False), "/healthz"),
    "/healthz",
    prepare=_deploy_nginx_prepare,
    needs=(nginx_binary() or "nginx",),
)


def curl_put(path: str = "/") -> Callable[[Trial], list[str]]:
    def command(trial: Trial) -> list[str]:
        url = f"{trial.url}{path}{trial.source.name}"
        return ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(trial.source), url]

    return command


def curl_form(trial: Trial) -> list[str]:
    return [
        *("curl", "-sS", "--fail", "-o", "/dev/null"),
        *("-F", f"files=@{trial.source}", f"{trial.url}/upload"),
    ]


def u2c(connections: int) -> Callable[[Trial], list[str]]:
    # -ns: no status panel (we are not a terminal); chunk size stays u2c's own default.
    def command(trial: Trial) -> list[str]:
        return [
            str(PEERS_BIN / "u2c"),
            "-ns",
            "-j",
            str(connections),
            f"{trial.url}/",
            str(trial.source),
        ]

    return command


def dd(block_size: int) -> Callable[[Trial], list[str]]:
    def command(trial: Trial) -> list[str]:
        return [
            *("dd", f"if={trial.source}", f"of={trial.storage / trial.source.name}"),
            *(f"bs={block_size}", "conv=fsync", "status=none"),
        ]

    return command


def dropzone(
    chunk_size: int | Callable[[int], int] | None, in_flight: int | None
) -> Callable[[Trial], list[str]]:
    """`pyfiledrop upload`; None leaves that knob at the uploader's own default, a function
    chooses the chunk size from the file's size (as the page does)."""

    def command(trial: Trial) -> list[str]:
        chunk: int | None
        if callable(chunk_size):  # a file not made yet (listing tools, dry runs): the smallest
            chunk = chunk_size(trial.source.stat().st_size if trial.source.exists() else 0)
        else:
            chunk = chunk_size
        knobs = [] if in_flight is None else ["--parallel", str(in_flight)]
        knobs += [] if chunk is None else ["--chunk-size", str(chunk)]
        return [
            *(str(PYFILEDROP_BIN / "pyfiledrop"), "upload", str(trial.source)),
            *("--url", trial.url, *knobs, "--json"),
        ]

    return command


CLI_DEFAULTS = "CLI defaults"
# The article's page: Dropzone with `chunkSize: 1000000`, kept as a labelled reference row.
ARTICLE_CHUNK_SIZE = 1_000_000
ARTICLE = f"article's 1MB x{PAGE_IN_FLIGHT}"


@dataclass(frozen=True)
class Matrix:
    chunk_sizes: tuple[int, ...]
    in_flight: tuple[int, ...]
    u2c_connections: tuple[int, ...]
    page_default: bool
    references: bool = (
        True  # rows no target needs: the article's 1 MB, nginx serving, tus with flush
    )


FULL = Matrix((2 * MIB, 8 * MIB, 32 * MIB, 64 * MIB), (1, 2, 4, 8), (2, 4), True)
QUICK = Matrix((8 * MIB, 64 * MIB), (4,), (2,), True, references=False)


def ceilings_and_peers(matrix: Matrix) -> list[Setting]:
    settings = [
        Setting("dd conv=fsync", "bs=8MiB", True, None, dd(8 * MIB)),
        Setting("nginx PUT", "curl -T", False, NGINX, curl_put()),
    ]
    settings += [
        Setting("copyparty u2c", f"-j {conns}", False, COPYPARTY, u2c(conns))
        for conns in matrix.u2c_connections
    ]
    settings += [
        Setting("copyparty PUT", "curl -T", False, COPYPARTY, curl_put()),
        Setting("uploadserver", "curl -F", False, UPLOADSERVER, curl_form),
    ]
    return settings


def pyfiledrop_settings(matrix: Matrix) -> list[Setting]:
    settings: list[Setting] = []
    for server, flush in ((PYFILEDROP, True), (PYFILEDROP_NO_FSYNC, False)):
        mode = "flush" if flush else "no flush"
        settings.append(
            Setting(f"pyfiledrop PUT ({mode})", "curl -T", flush, server, curl_put("/put/"))
        )
        settings.append(
            Setting(
                f"pyfiledrop Dropzone ({mode})", CLI_DEFAULTS, flush, server, dropzone(None, None)
            )
        )
        if matrix.page_default:
            settings.append(
                Setting(
                    f"pyfiledrop Dropzone ({mode})",
                    PAGE_DEFAULT,
                    flush,
                    server,
                    dropzone(page_chunk_size, PAGE_IN_FLIGHT),
                )
            )
        if matrix.references:
            settings.append(
                Setting(
                    f"pyfiledrop Dropzone ({mode})",
                    ARTICLE,
                    flush,
                    server,
                    dropzone(ARTICLE_CHUNK_SIZE, PAGE_IN_FLIGHT),
                )
            )
        settings += [
            Setting(
                f"pyfiledrop Dropzone ({mode})",
                f"{format_size(size)} x{count}",
                flush,
                server,
                dropzone(size, count),
            )
            for size in matrix.chunk_sizes
            for count in matrix.in_flight
        ]
    return settings


VIA_NGINX = "pyfiledrop via nginx (no flush)"
DIRECT_PUT = "pyfiledrop PUT (no flush)"
DIRECT_DROPZONE = "pyfiledrop Dropzone (no flush)"
# (client label, the system of the same client straight to pyfiledrop)
PROXIED_CLIENTS = (("curl -T", DIRECT_PUT), (CLI_DEFAULTS, DIRECT_DROPZONE),
                   (PAGE_DEFAULT, DIRECT_DROPZONE))  # fmt: skip


def proxy_settings() -> list[Setting]:
    """Each client straight to pyfiledrop and through docs/DEPLOY.md's nginx block, side by side
    (no flush, so the disk's flush does not hide what the proxy costs)."""
    clients = {
        "curl -T": curl_put("/put/"),
        CLI_DEFAULTS: dropzone(None, None),
        PAGE_DEFAULT: dropzone(page_chunk_size, PAGE_IN_FLIGHT),
    }
    settings: list[Setting] = []
    for label, direct in PROXIED_CLIENTS:
        settings.append(Setting(direct, label, False, PYFILEDROP_NO_FSYNC, clients[label]))
        settings.append(Setting(VIA_NGINX, label, False, PYFILEDROP_VIA_NGINX, clients[label]))
    return settings


def missing_tools(settings: list[Setting]) -> dict[str, str]:
    """Systems that can't run here, with what to do about it."""
    missing: dict[str, str] = {}
    for setting in settings:
        trial = Trial(Path("x"), Path("/nonexistent"), 1)
        tools = [setting.client(trial)[0]]
        if setting.server is not None:
            tools.append(setting.server.command(trial)[0])
            tools += setting.server.needs
        tools += setting.needs
        for tool in tools:
            if shutil.which(tool) is None and not Path(tool).exists():
                missing[setting.system] = f"{tool} not found"
    return missing
