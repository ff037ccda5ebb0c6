"""What people see: bars on a terminal (checked in a pseudo-terminal), plain lines elsewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.client.helpers import MiB, cli_command, cli_env, json_lines, run_cli
from tests.conftest import Server, random_file

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(state_dir: Path, *args: str) -> tuple[int, str]:
    command, *rest = cli_command(*args)
    child = pexpect.spawn(
        command, rest, env=cli_env(state_dir) | {"TERM": "xterm-256color"},
        dimensions=(30, 120), encoding="utf-8", timeout=120,
    )  # fmt: skip
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None
    return child.exitstatus, str(child.before)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_terminal_shows_bars_and_the_summary(
    server: Server, tmp_path: Path, state_dir: Path
) -> None:
    first = random_file(tmp_path / "first.bin", 24 * MiB)
    second = random_file(tmp_path / "second.bin", 8 * MiB + 1)
    code, screen = run_in_terminal(
        state_dir, "upload", str(first), str(second), "--url", server.url, "--chunk-size", "1MiB"
    )
    assert code == 0, screen
    assert "\x1b[" in screen  # drawn, not logged
    text = ANSI_ESCAPE.sub("", screen)
    assert "━" in text  # the bar
    assert "MB/s" in text
    for name, size in (("first.bin", "24.0 MiB"), ("second.bin", "8.0 MiB")):
        assert re.search(rf"{name}: {size} in [\d.]+ s \(\d+ MB/s\), sha256 verified, http", text)
    assert "total" in text  # several files: one line each plus a total
    assert "starting" not in text  # the log lines are for pipes only


def test_terminal_download_shows_a_bar(server: Server, tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "fetch me.bin", 16 * MiB)
    uploaded = run_cli(state_dir, "upload", str(source), "--url", server.url, "--json")
    (record,) = json_lines(uploaded.stdout)
    code, screen = run_in_terminal(
        state_dir, "download", record["url"], "-o", str(tmp_path / "copy.bin")
    )
    assert code == 0, screen
    text = ANSI_ESCAPE.sub("", screen)
    assert "━" in text and "copy.bin: 16.0 MiB in" in text and "sha256 verified" in text


def test_pipes_get_plain_lines(server: Server, tmp_path: Path, state_dir: Path) -> None:
    source = random_file(tmp_path / "plain.bin", 4 * MiB)
    result = run_cli(state_dir, "upload", str(source), "--url", server.url)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout + result.stderr
    assert "plain.bin: 4.0 MiB, starting" in result.stderr.splitlines()
    (line,) = result.stdout.splitlines()
    assert line.startswith("plain.bin: 4.0 MiB in ") and "sha256 verified" in line


def test_a_run_off_the_terminal_imports_neither_rich_nor_httpx_command_line_tool() -> None:
    # Each of them costs tens of ms of CPU at every start, for nothing off a terminal.
    script = (
        "import io, sys\n"
        "from pyfiledrop import cli\n"
        "from pyfiledrop.client.progress import make_reporter\n"
        "cli.build_parser()\n"
        "make_reporter(io.StringIO()).close()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'click', 'pygments'}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
