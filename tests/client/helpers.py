"""Running the `pyfiledrop` CLI as a user would, and watching a server while it works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server

CLI_TIMEOUT_SECONDS = 240.0
MiB = 1024 * 1024


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pyfiledrop", *args]


def cli_env(state_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYFILEDROP_")}
    return env | {"PYFILEDROP_STATE_DIR": str(state_dir), "COLUMNS": "120"}


def run_cli(
    state_dir: Path,
    *args: str,
    cwd: Path | None = None,
    timeout: float = CLI_TIMEOUT_SECONDS,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_command(*args),
        env=cli_env(state_dir) | (extra_env or {}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(state_dir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_command(*args),
        env=cli_env(state_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def wait_until(condition: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.01)


def counted(server: Server) -> int:
    return int(server.health()["chunks_counted"])


def saved_upload(state_dir: Path) -> dict[str, Any]:
    """The one upload state file the client keeps while an upload is unfinished."""
    files = sorted(state_dir.glob("upload-*.json"))
    assert len(files) == 1, files
    result: dict[str, Any] = json.loads(files[0].read_text())
    return result


def received_on_server(server: Server, dzuuid: str, owner: str | None) -> set[int]:
    cookies = {"pfd_owner": owner} if owner else None
    response = httpx.get(f"{server.url}/upload/{dzuuid}", cookies=cookies, timeout=10)
    response.raise_for_status()
    return set(response.json()["received"])
