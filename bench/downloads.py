"""Downloads: the source is put on the server first (untimed), then one client fetches it over
127.0.0.1 into the trial's folder: `pyfiledrop download` and curl from pyfiledrop, and curl from
nginx serving the same file as a reference. The downloaded copy is what gets hashed.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

from bench.systems import (
    CLI_DEFAULTS,
    NGINX,
    PYFILEDROP_BIN,
    PYFILEDROP_SERVING,
    Matrix,
    Setting,
    Trial,
)

PYFILEDROP_DOWNLOAD = "pyfiledrop download"
PYFILEDROP_DOWNLOAD_NO_FLUSH = "pyfiledrop download --no-flush"
NO_FLUSH_LABEL = "verifies, no flush"
CURL_FROM_PYFILEDROP = "curl download from pyfiledrop"
NGINX_GET = "curl download from nginx"


def target(trial: Trial) -> Path:
    return trial.workdir / "download" / trial.source.name


def downloaded(trial: Trial) -> Path | None:
    path = target(trial)
    return path if path.is_file() else None


def seed_pyfiledrop(trial: Trial) -> str:
    """PUT the source (curl -T) and return the `/download/<id>` URL from the answer; download
    links need no cookie or token (`--allow-downloads`, no password)."""
    target(trial).parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            *("curl", "-sS", "--fail", "-T", str(trial.source)),
            f"{trial.url}/put/{trial.source.name}",
        ],
        capture_output=True,
        text=True,
        timeout=60 + trial.source.stat().st_size / 10e6,  # stuck below 10 MB/s
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"seeding PUT failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    try:
        return str(json.loads(done.stdout)["url"])
    except (ValueError, KeyError) as error:
        raise RuntimeError(f"seeding PUT answered no URL: {done.stdout[:300]!r}") from error


def seed_nginx(trial: Trial) -> str:
    """The source hard-linked into nginx's root (copied across filesystems)."""
    target(trial).parent.mkdir(parents=True, exist_ok=True)
    served = trial.storage / trial.source.name
    try:
        os.link(trial.source, served)
    except OSError:
        shutil.copyfile(trial.source, served)
    return f"{trial.url}/{trial.source.name}"


def pyfiledrop_download(trial: Trial) -> list[str]:
    return [
        *(str(PYFILEDROP_BIN / "pyfiledrop"), "download", trial.fetch_url),
        *("-o", str(target(trial)), "--json"),
    ]


def pyfiledrop_download_no_flush(trial: Trial) -> list[str]:
    return [*pyfiledrop_download(trial), "--no-flush"]


def curl_download(trial: Trial) -> list[str]:
    return ["curl", "-sS", "--fail", "-o", str(target(trial)), trial.fetch_url]


def reference_settings(matrix: Matrix) -> list[Setting]:
    if not matrix.references:
        return []
    return [
        Setting(NGINX_GET, "curl -o", False, NGINX, curl_download, seed_nginx, downloaded),
    ]


def pyfiledrop_settings() -> list[Setting]:
    """`pyfiledrop download` flushes the file before it renames it into place (unless
    `--no-flush`); curl does not."""
    return [
        Setting(
            PYFILEDROP_DOWNLOAD,
            CLI_DEFAULTS,
            True,
            PYFILEDROP_SERVING,
            pyfiledrop_download,
            seed_pyfiledrop,
            downloaded,
        ),
        Setting(
            PYFILEDROP_DOWNLOAD_NO_FLUSH,
            NO_FLUSH_LABEL,
            False,
            PYFILEDROP_SERVING,
            pyfiledrop_download_no_flush,
            seed_pyfiledrop,
            downloaded,
        ),
        Setting(
            CURL_FROM_PYFILEDROP,
            "curl -o",
            False,
            PYFILEDROP_SERVING,
            curl_download,
            seed_pyfiledrop,
            downloaded,
        ),
    ]
