"""`pyfiledrop`: serve (the default), config, stats, and the uploader's commands."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import sys
from collections.abc import Sequence
from typing import Any

from pyfiledrop import __version__

EXIT_USAGE = 2
# Commands that need neither the server's settings nor admin's modules: they skip importing them
# (~60 ms of CPU at every start of `pyfiledrop upload`).
CLIENT_COMMANDS = ("upload", "download")
# Registered by the uploader's modules, which import httpx, rich and pygments: ~7 MiB of RSS
# that a server process never uses, so the parser for any other command line goes without them.
UPLOADER_COMMANDS = ("upload", "download", "delete")


def build_parser(uploader_commands: bool = True) -> argparse.ArgumentParser:
    from pyfiledrop.config import add_setting_flags

    parser = argparse.ArgumentParser(
        prog="pyfiledrop",
        description="Receive very large files fast: chunked, parallel, resumable uploads.",
    )
    parser.add_argument("--version", action="version", version=f"pyfiledrop {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the server (the default command)")
    add_setting_flags(serve)
    serve.set_defaults(func=run_serve)

    config = commands.add_parser("config", help="print the effective settings and their sources")
    add_setting_flags(config)
    config.add_argument("--json", action="store_true", help="print JSON")
    config.set_defaults(func=run_config)

    stats = commands.add_parser("stats", help="files stored, bytes, space saved by deduplication")
    add_setting_flags(stats)
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.set_defaults(func=run_stats)

    if uploader_commands:
        from pyfiledrop.client import delete
        from pyfiledrop.client.cli import register

        register(commands)
        delete.register(commands)

    from pyfiledrop import admin

    admin.register(commands)
    return parser


def _settings_from(args: argparse.Namespace) -> Any:
    from pyfiledrop.config import load_settings

    flags = {key: value for key, value in vars(args).items() if key not in ("func", "command")}
    return load_settings(flags)


def run_serve(args: argparse.Namespace) -> int:
    from pyfiledrop.config import ConfigError, S3Location, prepare_folders
    from pyfiledrop.server import serve
    from pyfiledrop.web.page import missing_assets

    loaded = _settings_from(args)
    if missing := missing_assets(loaded.settings):
        raise ConfigError(
            f"page assets missing from this install: {missing[0]} "
            "(from a checkout: `make assets`; else reinstall from a wheel that has them)"
        )
    if loaded.settings.database is not None and importlib.util.find_spec("psycopg") is None:
        # The zipapp, the executable and a wheel without extras have no PostgreSQL driver.
        raise ConfigError(
            "--database: PostgreSQL needs psycopg, which this install lacks; install the wheel "
            "with its extra: pip install './pyfiledrop-<version>-py3-none-any.whl[postgres]'"
        )
    prepare_folders(loaded.settings)
    if isinstance(loaded.settings.storage, S3Location):
        from pyfiledrop.storage.s3 import check_reachable

        check_reachable(loaded.settings)
    serve(loaded.settings)
    return 0


def run_config(args: argparse.Namespace) -> int:
    from pyfiledrop.config import describe_settings

    loaded = _settings_from(args)
    rows = describe_settings(loaded.settings, loaded.sources)
    if args.json:
        print(
            json.dumps(
                {name: {"value": value, "source": source} for name, value, source in rows}, indent=2
            )
        )
        return 0
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value:<{value_width}}  ({source})")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    import asyncio  # here: ~25 ms of CPU at every start of `pyfiledrop download`, which has none

    from pyfiledrop import files, runtime
    from pyfiledrop.units import format_size

    settings = _settings_from(args).settings
    runtime.require_existing_data(settings)

    async def read() -> files.StorageStats:
        with runtime.opened_database(settings) as db:
            return await files.storage_stats(db)

    stats = asyncio.run(read())
    if args.json:
        print(json.dumps(dataclasses.asdict(stats)))
        return 0
    print(f"files: {stats.files} ({format_size(stats.bytes)})")
    print(
        f"deduplicated: {stats.deduplicated_files} file(s), "
        f"{format_size(stats.bytes_saved_by_dedup)} saved"
    )
    print(
        f"uploads in progress: {stats.uploads_in_progress} "
        f"({format_size(stats.bytes_reserved_by_uploads)} reserved)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] and arguments[0] in CLIENT_COMMANDS:
        from pyfiledrop.client import cli as client

        try:
            return client.main(arguments)  # the same subcommand parser, prog "pyfiledrop"
        except KeyboardInterrupt:
            return 130
    from pyfiledrop.config import ConfigError

    parser = build_parser(
        uploader_commands=bool(arguments) and arguments[0] in (*UPLOADER_COMMANDS, "-h", "--help")
    )
    commands = next(
        action.choices
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    if not arguments or (
        arguments[0] not in commands and arguments[0] not in ("-h", "--help", "--version")
    ):
        arguments.insert(0, "serve")  # the article's command lines have no subcommand
    args = parser.parse_args(arguments)
    try:
        result: int = args.func(args)
        return result
    except ConfigError as error:
        print(f"pyfiledrop: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pyfiledrop config | head`
        sys.stderr.close()
        return 0
