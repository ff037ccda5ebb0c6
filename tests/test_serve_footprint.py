"""What a server process carries: modules it never uses cost every process their RSS (issue 12:
32 uploads at once must stay under 100 MiB), so serving on local disk leaves them unimported."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pyfiledrop import cli

# The uploader's HTTP stack and terminal output, and S3's SDK: none of them serves local disk.
UNUSED_BY_A_LOCAL_SERVER = ("httpx", "httpcore", "rich", "pygments", "boto3", "botocore")

# Runs `pyfiledrop serve` up to the point of serving: the app built and the core (SQLite, local
# disk) opened and closed, then lists the top-level modules the process holds.
SERVE_THEN_LIST = """
import json, sys
import pyfiledrop.server
from pyfiledrop import runtime
from pyfiledrop.web.app import create_app

def serve(settings):
    create_app(settings)
    runtime.close_core(runtime.open_core(settings))
    print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))

pyfiledrop.server.serve = serve
from pyfiledrop.cli import main
sys.exit(main(sys.argv[1:]))
"""


def loaded_by_serving(root: Path, *args: str) -> set[str]:
    command = [
        sys.executable, "-c", SERVE_THEN_LIST, *args, "--storage", str(root / "storage"),
        "--chunks", str(root / "chunks"), "--data", str(root / "data"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_serving_local_disk_imports_no_client_or_s3_modules(tmp_path: Path) -> None:
    for args in ((), ("serve",), ("serve", "--host", "127.0.0.1")):
        loaded = loaded_by_serving(tmp_path, *args)
        assert "pyfiledrop" in loaded and "uvicorn" in loaded  # it got as far as serving
        assert not loaded & set(UNUSED_BY_A_LOCAL_SERVER), args


def test_the_uploader_commands_are_the_ones_the_server_parser_leaves_out() -> None:
    def commands(parser: argparse.ArgumentParser) -> list[str]:
        found = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return list(found.choices)

    everything = commands(cli.build_parser())
    serving = commands(cli.build_parser(uploader_commands=False))
    assert [name for name in everything if name not in serving] == list(cli.UPLOADER_COMMANDS)


def test_prometheus_client_is_loaded_only_to_serve_metrics(tmp_path: Path) -> None:
    assert "prometheus_client" not in loaded_by_serving(tmp_path, "serve")
    assert "prometheus_client" in loaded_by_serving(tmp_path, "serve", "--metrics")
