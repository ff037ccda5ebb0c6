"""Settings from flags, environment and TOML, and how bad values are reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyfiledrop.config import ConfigError, load_settings
from pyfiledrop.server import summary
from pyfiledrop.units import auto_chunk_size

MIB = 1024 * 1024
GIB = 1024 * MIB


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyfiledrop", *args],
        cwd=cwd, env={"PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_defaults_match_the_article(tmp_path: Path) -> None:
    settings = load_settings({}, environ={}, cwd=tmp_path).settings
    assert (settings.port, settings.host) == (16273, "0.0.0.0")
    assert (settings.max_size, settings.timeout) == (100000, 120000)
    assert settings.chunk_size is None  # auto (issue 12); a number is a fixed size as before
    assert settings.parallel_chunks and settings.force_chunking
    assert not settings.allow_downloads
    assert settings.dz_cdn is None and settings.dz_version is None


def test_precedence_flag_over_environment_over_file(tmp_path: Path) -> None:
    (tmp_path / "pyfiledrop.toml").write_text("port = 1111\nmax-size = 5\ntimeout = 9000\n")
    loaded = load_settings(
        {"port": "3333"},
        environ={"PYFILEDROP_PORT": "2222", "PYFILEDROP_MAX_SIZE": "6"},
        cwd=tmp_path,
    )
    assert loaded.settings.port == 3333
    assert loaded.settings.max_size == 6
    assert loaded.settings.timeout == 9000
    assert loaded.sources["port"] == "flag --port"
    assert loaded.sources["max_size"] == "environment PYFILEDROP_MAX_SIZE"
    assert loaded.sources["timeout"].startswith("file ")
    assert loaded.sources["host"] == "default"


@pytest.mark.parametrize(
    ("flags", "environ", "message"),
    [
        ({"port": "abc"}, {}, "--port: 'abc' is not allowed; expected an integer"),
        ({"max_size": "0"}, {}, "--max-size: '0' is not allowed"),
        ({"timeout": "-5"}, {}, "--timeout"),
        ({"chunk_size": "1.5x"}, {}, "--chunk-size"),
        ({}, {"PYFILEDROP_FORCE_CHUNKING": "maybe"}, "PYFILEDROP_FORCE_CHUNKING"),
    ],
)
def test_bad_values_are_named(
    tmp_path: Path, flags: dict[str, str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_settings(flags, environ=environ, cwd=tmp_path)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    (tmp_path / "pyfiledrop.toml").write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'prot'"):
        load_settings({}, environ={}, cwd=tmp_path)


def test_bad_toml(tmp_path: Path) -> None:
    config = tmp_path / "x.toml"
    config.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"config": str(config)}, environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "x"],
        ["-p", "0"],
        ["--max-size", "-1"],
        ["--chunk-size", "0"],
        ["--timeout", "1.5"],
        ["--storage", "/proc/forbidden/storage"],
    ],
)
def test_bad_start_is_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pyfiledrop: error:")
    assert "Traceback" not in result.stderr


def test_config_command_prints_sources(tmp_path: Path) -> None:
    (tmp_path / "pyfiledrop.toml").write_text("timeout = 5000\n")
    result = run_cli("config", "-p", "9999", cwd=tmp_path, env={"PYFILEDROP_MAX_SIZE": "77"})
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "9999" in lines["port"] and "flag --port" in lines["port"]
    assert "77" in lines["max_size"] and "PYFILEDROP_MAX_SIZE" in lines["max_size"]
    assert "5000" in lines["timeout"] and "pyfiledrop.toml" in lines["timeout"]
    assert "(default)" in lines["host"]


def test_inverted_flags_say_what_they_do_with_defaults() -> None:
    """Each of these flags turns something off: the help said what the default does."""
    import argparse
    import re

    from pyfiledrop.client.cli import register
    from pyfiledrop.config import add_setting_flags

    server = argparse.ArgumentParser(prog="pyfiledrop serve")
    add_setting_flags(server)
    helps = {
        action.option_strings[-1]: " ".join((action.help or "").split())
        for action in server._actions
        if action.option_strings
    }
    assert re.search(
        r"one at a time .*default: --chunks-in-flight", helps["--disable-parallel-chunks"]
    )
    assert re.search(
        r"in one request .*default: every file in chunks", helps["--disable-force-chunking"]
    )
    assert re.search(r"answer before .*flushed.*default: flush first", helps["--no-fsync"])
    # Sizes: one rule, said where sizes are typed, on the server and in the client.
    client = argparse.ArgumentParser(prog="pyfiledrop")
    register(client.add_subparsers())
    upload = client._subparsers._group_actions[0].choices["upload"]  # type: ignore[union-attr]
    client_chunk = next(a for a in upload._actions if "--chunk-size" in a.option_strings)
    for text in (helps["--chunk-size"], helps["--min-free"], client_chunk.help or ""):
        assert "8M and 8MiB are 8 MiB; 8MB is 8,000,000 bytes" in " ".join(text.split())


def test_chunk_size_auto_or_fixed_and_the_summary_says_which(tmp_path: Path) -> None:
    folders = {"storage": str(tmp_path), "chunks": str(tmp_path)}
    auto = load_settings({"chunk_size": "auto", **folders}, environ={}, cwd=tmp_path).settings
    fixed = load_settings({"chunk_size": "1000000", **folders}, environ={}, cwd=tmp_path).settings
    assert (auto.chunk_size, fixed.chunk_size) == (None, 1000000)
    assert "Chunk Size: auto (per file: 1.0 MiB to 64.0 MiB" in summary(auto)
    assert "Chunk Size: 976.6 KiB (fixed)" in summary(fixed)
    assert [auto_chunk_size(size) for size in (0, 128 * MIB, 128 * MIB + 1, 10 * GIB)] == [
        MIB,
        MIB,
        2 * MIB,
        64 * MIB,
    ]
    assert auto_chunk_size(3 * MIB, minimum=8 * MIB) == 8 * MIB
