"""Every systemd unit in docs/DEPLOY.md, taken from the document itself, passes
`systemd-analyze verify` (Debian's systemd package, `make system-deps`) and has no trailing
comments: systemd has none, so `Key=value  # note` makes the note part of the value, and
verify says nothing when that value is an optional path (`EnvironmentFile=-/etc/x  # ...`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "DEPLOY.md"
INI_BLOCK = re.compile(r"^```ini\n(.*?)^```", re.S | re.M)
EXEC = re.compile(r"^(Exec\w+=[-@:+!]*)(/\S+)", re.M)


def documented_units() -> list[str]:
    return [block for block in INI_BLOCK.findall(DEPLOY.read_text()) if "[Service]" in block]


def test_both_recipes_have_their_unit() -> None:
    units = documented_units()
    assert len(units) == 2, "the one-node and the several-node units"
    assert "ExecStart=/usr/local/bin/pyfiledrop serve" in units[0], "one node comes first"


def trailing_comments(unit: str) -> list[str]:
    return [
        line
        for line in unit.splitlines()
        if not line.lstrip().startswith(("#", ";")) and re.search(r"\s[#;]", line)
    ]


def test_the_old_env_file_line_is_caught() -> None:
    line = "EnvironmentFile=-/etc/pyfiledrop/env          # AWS_ACCESS_KEY_ID=..."
    assert trailing_comments(f"[Service]\n{line}\n") == [line]


@pytest.mark.parametrize("index", range(len(documented_units())))
def test_documented_unit_verifies(index: int, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: run `make system-deps`"
    unit = documented_units()[index]
    assert trailing_comments(unit) == []

    # verify insists that the programs exist: stand-ins at the same paths under tmp_path.
    def stand_in(match: re.Match[str]) -> str:
        program = tmp_path / "root" / match.group(2).lstrip("/")
        program.parent.mkdir(parents=True, exist_ok=True)
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
        return match.group(1) + str(program)

    path = tmp_path / "pyfiledrop.service"
    path.write_text(EXEC.sub(stand_in, unit))
    result = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on unknown keys and unparsable values, only saying so: any word fails.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr
