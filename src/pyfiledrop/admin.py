"""`pyfiledrop files list|info ID|rm ID|purge-expired`: the operator's view of the stored files.

Works on the server's data (the same settings as `serve`: flags, environment, config file), with
or without the server running; removals go through the same tombstones as the API's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from pyfiledrop import files, lifecycle, receiving, runtime
from pyfiledrop.config import Settings, add_setting_flags, load_settings
from pyfiledrop.meta import Database, StoredFile, Upload
from pyfiledrop.storage import Storage
from pyfiledrop.units import format_size, format_time

EXIT_OK, EXIT_NOT_FOUND = 0, 1
NOT_SETTINGS = ("func", "command", "action", "json", "all", "file_id", "in_progress")


def register(commands: argparse._SubParsersAction[Any]) -> None:
    files = commands.add_parser(
        "files", help="list, inspect and remove stored files (on this machine's data folder)"
    )
    actions = files.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the stored files, newest first")
    listing.add_argument("--all", action="store_true", help="also files no longer served")
    listing.add_argument(
        "--in-progress",
        action="store_true",
        help="uploads still arriving instead: owner, protocol, bytes received, age, idle time",
    )
    listing.set_defaults(func=run_list)
    info = actions.add_parser("info", help="everything known about one file")
    info.add_argument("file_id", metavar="ID")
    info.set_defaults(func=run_info)
    remove = actions.add_parser("rm", help="remove a file (its link then answers 410)")
    remove.add_argument("file_id", metavar="ID")
    remove.set_defaults(func=run_rm)
    purge = actions.add_parser(
        "purge-expired", help="remove expired, used-up and vanished files now (as the janitor does)"
    )
    purge.set_defaults(func=run_purge)
    for action in (listing, info, remove, purge):
        add_setting_flags(action)
        action.add_argument("--json", action="store_true", help="print JSON")


def _settings(args: argparse.Namespace) -> Settings:
    flags = {key: value for key, value in vars(args).items() if key not in NOT_SETTINGS}
    settings = load_settings(flags).settings
    runtime.require_existing_data(settings)
    return settings


def _full_path(settings: Settings, path: str) -> str:
    if isinstance(settings.storage, Path):
        return str(settings.storage / path)
    return f"{settings.storage}/{path}"  # an object store's location


def _iso(moment: float | None) -> str | None:
    return format_time(moment) if moment else None


def describe_file(stored: StoredFile, settings: Settings, now: float) -> dict[str, Any]:
    reason = lifecycle.why_gone(stored, now)
    return {
        "id": stored.id,
        "name": stored.name,
        "path": _full_path(settings, stored.path),
        "size": stored.size,
        "sha256": stored.sha256,
        "owner": stored.owner[:12],
        "created": _iso(stored.created),
        "expires": _iso(stored.expires),
        "downloads": stored.downloads,
        "max_downloads": stored.max_downloads,
        "last_download": _iso(stored.last_download),
        "deduplicated_from": stored.linked_from,
        "status": "served" if reason is None else reason,
        "gone_at": _iso(stored.gone_at),
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no files")
        return
    for row in rows:
        expires = row["expires"] or "never"
        limit = f"/{row['max_downloads']}" if row["max_downloads"] is not None else ""
        print(
            f"{row['id']}  {format_size(row['size']):>10}  {row['status']:<8}  "
            f"expires {expires:<20}  downloads {row['downloads']}{limit}  {row['name']}"
        )


def _reading(settings: Settings, work: Any) -> Any:
    """Run `work(db)` (a coroutine function) with only the books open."""

    async def run() -> Any:
        with runtime.opened_database(settings) as db:
            return await work(db)

    return asyncio.run(run())


def run_list(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.in_progress:
        return _list_in_progress(settings, args.json)
    stored_files: list[StoredFile] = _reading(
        settings, lambda db: files.all_files(db, include_gone=args.all)
    )
    now = time.time()
    rows = [describe_file(stored, settings, now) for stored in stored_files]
    if args.json:
        print(json.dumps({"files": rows}, indent=2))
    else:
        _print_table(rows)
    return EXIT_OK


async def describe_upload(db: Database, upload: Upload, now: float) -> dict[str, Any]:
    return {
        "id": upload.id,
        "name": upload.name,
        "owner": upload.owner[:12],
        "protocol": upload.protocol,
        "state": upload.state,
        "received": await receiving.received_bytes(db, upload),
        "size": upload.size,
        "started": _iso(upload.created),
        "age_seconds": round(max(0.0, now - upload.created)),
        "idle_seconds": round(max(0.0, now - upload.updated)),
    }


def _list_in_progress(settings: Settings, as_json: bool) -> int:
    async def rows(db: Database) -> list[dict[str, Any]]:
        uploads = await receiving.uploads_in_progress(db)
        now = time.time()
        found = [await describe_upload(db, upload, now) for upload in uploads]
        return sorted(found, key=lambda row: row["age_seconds"], reverse=True)

    found: list[dict[str, Any]] = _reading(settings, rows)
    if as_json:
        print(json.dumps({"uploads": found}, indent=2))
        return EXIT_OK
    if not found:
        print("no uploads in progress")
    for row in found:
        got = "?" if row["received"] is None else format_size(row["received"])
        total = "?" if row["size"] is None else format_size(row["size"])
        print(
            f"{row['id']}  {row['owner']}  {row['protocol']:<8}  {got:>10} of {total:<10}  "
            f"age {_ago(row['age_seconds']):>6}  idle {_ago(row['idle_seconds']):>6}  "
            f"{row['state']:<10}  {row['name']}"
        )
    return EXIT_OK


def _ago(seconds: int) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.1f}{unit}"
    return f"{seconds}s"


def run_info(args: argparse.Namespace) -> int:
    settings = _settings(args)
    stored = _reading(settings, lambda db: files.find_file(db, args.file_id))
    if stored is None:
        return _not_found(args)
    row = describe_file(stored, settings, time.time())
    row["on_disk"] = not stored.gone and _with_storage(
        settings, lambda db, storage: storage.exists(stored.path)
    )
    if args.json:
        print(json.dumps(row, indent=2))
    else:
        width = max(len(key) for key in row)
        for key, value in row.items():
            print(f"{key:<{width}}  {'-' if value is None else value}")
    return EXIT_OK


def _not_found(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps({"error": "no such file", "id": args.file_id}))
    else:
        print(f"pyfiledrop files: no file with id {args.file_id}")
    return EXIT_NOT_FOUND


def _with_storage(settings: Settings, work: Any) -> Any:
    """Run `work(db, storage)` (a coroutine function) with the books and the storage open."""

    async def run() -> Any:
        core = runtime.open_core(settings)
        try:
            return await work(core.db, core.storage)
        finally:
            runtime.close_core(core)

    return asyncio.run(run())


def run_rm(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def remove(db: Database, storage: Storage) -> tuple[StoredFile | None, bool]:
        stored = await files.find_file(db, args.file_id)
        if stored is None:
            return None, False
        return stored, await lifecycle.remove_file(
            db, storage, stored.id, lifecycle.REMOVED, time.time()
        )

    stored, removed = _with_storage(settings, remove)
    if stored is None:
        return _not_found(args)
    result = {"id": stored.id, "name": stored.name, "removed": removed, "was": stored.gone}
    if args.json:
        print(json.dumps(result))
    elif removed:
        print(f"removed {stored.name} ({stored.id})")
    else:
        print(f"{stored.name} ({stored.id}) was already gone: {stored.gone}")
    return EXIT_OK


def run_purge(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def purge(db: Database, storage: Storage) -> list[lifecycle.Removed]:
        return await lifecycle.purge(db, storage, time.time())

    removed: list[lifecycle.Removed] = _with_storage(settings, purge)
    rows = [
        {"id": r.file.id, "name": r.file.name, "size": r.file.size, "reason": r.reason}
        for r in removed
    ]
    if args.json:
        print(json.dumps({"removed": rows, "bytes": sum(r.file.size for r in removed)}))
    else:
        for row in rows:
            print(f"removed {row['name']} ({row['id']}): {row['reason']}")
        freed = format_size(sum(r.file.size for r in removed))
        print(f"{len(rows)} file(s) removed, {freed}")
    return EXIT_OK
