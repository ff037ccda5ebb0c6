"""`python -m bench` (or `make bench ARGS=...`): run the upload benchmark and write the results.

Modes: the matrix (default; every system on one file, runs interleaved round-robin),
--proxy (pyfiledrop through docs/DEPLOY.md's nginx block and direct, same clients),
--concurrency (many uploads at once to one server) and --memory (peak RSS for one big upload).
"""

import argparse
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import downloads, profile, quiet, report, tus
from bench.machine import machine, versions
from bench.measure import Result, run_concurrent, run_trial, settle_disk
from bench.sources import random_file
from bench.systems import (
    FULL,
    NGINX,
    PYFILEDROP,
    PYFILEDROP_BIN,
    PYFILEDROP_NO_FSYNC,
    QUICK,
    Setting,
    Trial,
    ceilings_and_peers,
    curl_put,
    dropzone,
    missing_tools,
    proxy_settings,
    pyfiledrop_settings,
)
from bench.units import GIB, MIB, format_size, parse_size

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def quiet_note(threshold: float) -> str:
    return (
        f"Each run waits until the 1-minute load average is below {threshold} and records it; "
        "runs that started above it (marked `loaded`) are left out of every quoted figure. "
        "Runs are interleaved round-robin and the median of the quiet runs is reported."
    )


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _sizes(text: str) -> list[int]:
    return [_size(item) for item in text.split(",")]


def _counts(text: str) -> list[int]:
    try:
        counts = [int(item) for item in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {text!r}") from None
    if any(count < 1 for count in counts):
        raise argparse.ArgumentTypeError(f"counts must be positive: {text!r}")
    return counts


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--concurrency", action="store_true", help="many uploads at once")
    mode.add_argument("--memory", action="store_true", help="server peak RSS for one big upload")
    mode.add_argument(
        "--proxy",
        action="store_true",
        help="pyfiledrop through docs/DEPLOY.md's nginx block vs direct (<name>-proxy.md)",
    )
    mode.add_argument(
        "--report", type=Path, metavar="RAW.jsonl", help="only redraw from raw results"
    )
    parser.add_argument("--size", type=_size, default=2 * GIB, help="file size (default 2GiB)")
    parser.add_argument("--runs", type=int, help="runs per setting (default 5; 1 for other modes)")
    parser.add_argument("--quick", action="store_true", help="small Dropzone matrix")
    parser.add_argument(
        "--chunk-sizes", type=_sizes, metavar="LIST", help="Dropzone chunk sizes (2MiB,8MiB,...)"
    )
    parser.add_argument("--in-flight", type=_counts, metavar="LIST", help="chunks in flight (1,4)")
    parser.add_argument("--u2c-connections", type=_counts, metavar="LIST", help="u2c -j values")
    parser.add_argument(
        "--only", action="append", default=[], metavar="TEXT", help="systems containing TEXT"
    )
    parser.add_argument(
        "--drop-caches", action="store_true", help="empty the page cache before every run (root)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the servers; top costs per setting"
    )
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the results' notes (repeatable)"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=quiet.QUIET_LOAD,
        help="wait before each run until the 1-minute load is below this "
        f"(default {quiet.QUIET_LOAD})",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=quiet.QUIET_WAIT_SECONDS,
        help="longest wait for a quiet machine before a run, in seconds; a run that starts "
        f"above --max-load is marked loaded (default {quiet.QUIET_WAIT_SECONDS:.0f})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list settings and time estimate")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where latest*.md/png go")
    parser.add_argument("--name", default="latest", help="file name of the table and chart")
    parser.add_argument("--raw", type=Path, default=RESULTS / "raw", help="raw results and files")
    parser.add_argument("--uploads", type=int, default=32, help="--concurrency: uploads at once")
    parser.add_argument("--upload-size", type=_size, default=256 * MIB, help="--concurrency: each")
    parser.add_argument("--parallel", type=int, default=4, help="chunks in flight per upload")
    parser.add_argument("--chunk-size", type=_size, default=8 * MIB, help="chunk size")
    parser.add_argument(
        "--system",
        choices=["pyfiledrop", "pyfiledrop-nofsync", "nginx"],
        default="pyfiledrop",
        help="--concurrency/--memory: the server to load",
    )
    return parser.parse_args(argv)


def pyfiledrop_ready() -> tuple[bool, bool]:
    """(server runs, CLI uploader exists) in the pyfiledrop install under test."""

    def help_text(*args: str) -> str:
        try:
            done = subprocess.run(
                [str(PYFILEDROP_BIN / "pyfiledrop"), *args, "--help"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError:
            return ""
        return done.stdout if done.returncode == 0 else ""

    # Without the uploader, `pyfiledrop upload --help` falls through to serve's help.
    return "--no-fsync" in help_text("serve"), "--parallel" in help_text("upload")


def uses_uploader(setting: Setting) -> bool:
    """Is the client `pyfiledrop upload` or `download` (which older installs lack)?"""
    argv = setting.client(Trial(Path("x"), Path("/nonexistent"), 1))
    return argv[0].endswith("pyfiledrop") and argv[1:2] in (["upload"], ["download"])


def matrix_settings(args: argparse.Namespace, notes: list[str]) -> list[Setting]:
    matrix = QUICK if args.quick else FULL
    matrix = replace(
        matrix,
        chunk_sizes=tuple(args.chunk_sizes or matrix.chunk_sizes),
        in_flight=tuple(args.in_flight or matrix.in_flight),
        u2c_connections=tuple(args.u2c_connections or matrix.u2c_connections),
    )
    others = [
        *ceilings_and_peers(matrix),
        *tus.peer_settings(),
        *downloads.reference_settings(matrix),
    ]
    pyfiledrops = [
        *pyfiledrop_settings(matrix),
        *tus.pyfiledrop_settings(matrix),
        *downloads.pyfiledrop_settings(),
    ]
    return available(args, others, pyfiledrops, notes)


def available(
    args: argparse.Namespace, others: list[Setting], pyfiledrops: list[Setting], notes: list[str]
) -> list[Setting]:
    """The settings that can run here (and --only picks), with a note for each left out."""
    settings = list(others)
    server_ok, uploader_ok = pyfiledrop_ready()
    if server_ok:
        settings += [
            setting for setting in pyfiledrops if uploader_ok or not uses_uploader(setting)
        ]
    if not server_ok or not uploader_ok:
        notes.append(
            "pyfiledrop's " + ("CLI uploader" if server_ok else "server") + " not available"
        )
    if args.only:
        settings = [s for s in settings if any(text in s.key for text in args.only)]
    for system, why in missing_tools(settings).items():
        notes.append(f"skipped {system}: {why}")
        settings = [s for s in settings if s.system != system]
    return settings


def setting_slug(setting: Setting) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", setting.key).strip("-").lower()


def summarize_profiles(settings: Sequence[Setting], folder: Path) -> None:
    """Merge each setting's runs and print (and keep) its top costs."""
    texts = []
    for setting in settings:
        stacks: Counter[tuple[str, ...]] = Counter()
        threads: Counter[str] = Counter()
        for path in sorted(folder.glob(f"{setting_slug(setting)}-r*.txt")):
            stacks.update(profile.parse_collapsed(path.read_text().splitlines()))
        for path in sorted(folder.glob(f"{setting_slug(setting)}-r*.threads.json")):
            threads.update(json.loads(path.read_text()))
        if stacks:
            costs = profile.format_costs(profile.top_costs(stacks), sum(stacks.values()))
            split = ", ".join(f"{name} {value:.2f}s" for name, value in threads.most_common())
            texts.append(f"## {setting.key}\nCPU by thread: {split}\n{costs}\n")
    (folder / "summary.txt").write_text("\n".join(texts))
    print("\n".join(texts))
    print(f"profiles: {folder}")


def estimate_seconds(settings: Sequence[Setting], size: int, runs: int) -> float:
    """Rough: ~250 MB/s uploads, hashing the stored file at ~1.5 GB/s, ~3 s start/stop/sync;
    a download row uploads the file first."""
    per_trial = size / 250e6 + size / 1.5e9 + 3
    seeded = sum(1 for setting in settings if setting.seed is not None)
    return (per_trial * len(settings) + size / 250e6 * seeded) * runs


def write_raw(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as raw:
        raw.write(json.dumps(record) + "\n")


def read_raw(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines[0], lines[1:]


def publish(
    meta: dict[str, Any], results: list[dict[str, Any]], out: Path, name: str = "latest"
) -> Path:
    rows = report.summarize(results, meta.get("max_load", quiet.QUIET_LOAD))
    heading = meta.get("title", "Upload benchmark")
    title = f"pyfiledrop {heading[0].lower()}{heading[1:]} ({meta['header']['Date']})"
    markdown = report.document(
        heading, rows, meta["header"], meta["machine"], meta["versions"], meta["notes"]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(markdown)
    try:
        report.chart(rows, title, out / f"{name}.png")
    except ModuleNotFoundError as missing:  # the table is what counts; the chart is extra
        if missing.name != "matplotlib":
            raise
        print("no chart: matplotlib missing (`make bench` installs the bench extra)")
    return out / f"{name}.md"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_matrix(args: argparse.Namespace) -> int:
    notes: list[str] = [quiet_note(args.max_load)]
    settings = matrix_settings(args, notes)
    return run_settings(args, settings, notes, "matrix", "Upload benchmark", args.name)


PROXY_NOTE = (
    "`pyfiledrop via nginx` runs docs/DEPLOY.md's nginx block as written, read from the document, "
    "except `listen` (127.0.0.1, no TLS) and the upstream (one local node), with "
    "`worker_processes auto`; the client reaches nginx and nginx reaches pyfiledrop over "
    "127.0.0.1. Its CPU and peak RSS are nginx's and pyfiledrop's together. Each client also "
    "runs straight to pyfiledrop (the same settings as the matrix's), interleaved with it."
)


DOWNLOAD_NOTE = (
    "Download rows: the file is put on the server first (pyfiledrop: `curl -T` to `/put/`, "
    "untimed; nginx: a hard link in its root), so it is read from the page cache; then one "
    "client fetches it into the run's folder and the copy is hashed. The server's CPU counts from "
    "after the seeding; its peak RSS is the sampled one (the high-water mark would be the "
    "seeding upload's). `pyfiledrop download` hashes what it receives and flushes the file "
    "before renaming it into place (with `--no-flush` it only hashes); `curl -o` does neither."
)


def run_proxy(args: argparse.Namespace) -> int:
    notes: list[str] = [quiet_note(args.max_load), PROXY_NOTE]
    settings = available(args, [], proxy_settings(), notes)
    title = "Upload benchmark: through nginx (docs/DEPLOY.md) vs direct"
    return run_settings(args, settings, notes, "proxy", title, f"{args.name}-proxy")


def run_settings(
    args: argparse.Namespace,
    settings: list[Setting],
    notes: list[str],
    kind: str,
    title: str,
    name: str,
) -> int:
    """Every setting args.runs times, interleaved round-robin; the table goes to <out>/<name>.md."""
    notes += args.note
    runs = args.runs or 5
    seconds = estimate_seconds(settings, args.size, runs)
    print(
        f"{len(settings)} settings x {runs} runs of {format_size(args.size)}: "
        f"~{seconds / 60:.0f} min"
    )
    for setting in settings:
        print(f"  {setting.key}")
    for note in notes[1:]:
        print(f"  note: {note}")
    if args.dry_run or not settings:
        return 0
    source, sha = random_file(args.raw / f"source-{format_size(args.size)}.bin", args.size)
    settle_disk(True, [source]) if args.drop_caches else None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw_path = args.raw / f"{stamp}-{kind}.jsonl"
    notes.append(
        "Each run: a fresh server in its own folder on the same disk as the source file, "
        + ("page cache dropped and the source read back in, " if args.drop_caches else "`sync`, ")
        + "then one upload over 127.0.0.1; the stored file is hashed and deleted afterwards."
    )
    if any(setting.seed is not None for setting in settings):
        notes.append(DOWNLOAD_NOTE)
    header: dict[str, str] = {
        "Date": _now(),
        "File": f"{format_size(args.size)} of random bytes, {runs} runs per setting, "
        "interleaved round-robin (the order rotates each round)",
    }
    meta: dict[str, Any] = {
        "title": title,
        "kind": kind,
        "header": header,
        "machine": machine(args.raw),
        "versions": versions(),
        "notes": notes,
        "max_load": args.max_load,
    }
    write_raw(raw_path, meta)
    results: list[dict[str, Any]] = []
    profiles = args.raw / "profiles" / stamp
    profiles.mkdir(parents=True, exist_ok=True) if args.profile else None
    started = time.monotonic()
    for round_number in range(runs):
        order = settings[round_number % len(settings) :] + settings[: round_number % len(settings)]
        for index, setting in enumerate(order):
            settle_disk(args.drop_caches, [source])
            load = quiet.wait_until_quiet(args.max_load, args.quiet_wait)
            workdir = args.raw / "work" / f"r{round_number}-{index}"
            profile_to = None
            if args.profile and setting.server is not None:
                profile_to = profiles / f"{setting_slug(setting)}-r{round_number}.txt"
            result: Result = run_trial(
                setting, source, sha, workdir, round_number, args.raw / "logs", profile_to
            )
            result.load = load
            results.append(result.to_json())
            write_raw(raw_path, result.to_json())
            status = "ok" if result.error is None else f"FAILED: {result.error}"
            if not quiet.is_quiet(load, args.max_load):
                status += " (loaded: not quoted)"
            print(
                f"[{round_number + 1}/{runs}] {setting.key}: {result.mb_per_s:.0f} MB/s, "
                f"cpu {result.cpu_seconds:.2f}s (client {result.client_cpu_seconds or 0:.2f}s), "
                f"rss {result.peak_rss_kib / 1024:.0f} MiB, "
                f"load {load:.2f}, {status}",
                flush=True,
            )
        if round_number == 0 and runs > 1:
            took = time.monotonic() - started
            print(f"round 1 took {took / 60:.1f} min; ~{took * (runs - 1) / 60:.0f} min left")
    header["Duration"] = f"{(time.monotonic() - started) / 60:.0f} min"
    if args.profile:
        summarize_profiles(settings, profiles)
    path = publish(meta, results, args.out, name)
    print(path.read_text())
    return 0 if all(result["error"] is None for result in results) else 1


def _load_cell(load: float, threshold: float) -> str:
    return f"{load:.2f}" if quiet.is_quiet(load, threshold) else f"{load:.2f} (loaded)"


def single_server_setting(args: argparse.Namespace) -> Setting:
    if args.system == "nginx":
        return Setting("nginx PUT", "curl -T", False, NGINX, curl_put())
    server = PYFILEDROP if args.system == "pyfiledrop" else PYFILEDROP_NO_FSYNC
    label = f"{format_size(args.chunk_size)} x{args.parallel}"
    return Setting("pyfiledrop Dropzone", label, server is PYFILEDROP, server,
                   dropzone(args.chunk_size, args.parallel))  # fmt: skip


def run_concurrency(args: argparse.Namespace) -> int:
    setting = single_server_setting(args)
    folder = args.raw / f"concurrency-{format_size(args.upload_size)}"
    sources = [
        random_file(folder / f"upload-{index:02d}.bin", args.upload_size)
        for index in range(args.uploads)
    ]
    lines = [
        "# Concurrency benchmark",
        "",
        f"- **Date:** {_now()}",
        f"- **Load:** {args.uploads} uploads of {format_size(args.upload_size)} at once "
        f"(one client process each), {setting.system} {setting.label}, "
        f"server {setting.server.name if setting.server else '-'}",
        "- **Machine:** " + ", ".join(f"{k} {v}" for k, v in machine(args.raw).items()),
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- {quiet_note(args.max_load)}",
        "- Time runs from starting the first client process to the last one's exit: the 32 "
        "uploaders' own start-up and hashing share the same 2 cores and count.",
        *[f"- {note}" for note in args.note],
        "",
        "| Run | Load | Total MB/s | Seconds | Server CPU s/GiB | Server peak RSS MiB "
        "| SHA-256 ok |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    failed = False
    for run in range(args.runs or 1):
        settle_disk(args.drop_caches, [source for source, _ in sources])
        load = quiet.wait_until_quiet(args.max_load, args.quiet_wait)
        result = run_concurrent(
            setting, sources, args.raw / "work" / f"conc-{run}", args.raw / "logs"
        )
        write_raw(
            args.raw / "concurrency.jsonl", {"date": _now(), "load": load, **result.to_json()}
        )
        total_gib = result.uploads * result.size_each / GIB
        lines.append(
            f"| {run + 1} | {_load_cell(load, args.max_load)} "
            f"| {result.total_mb_s:.0f} | {result.seconds:.1f} "
            f"| {result.cpu_seconds / total_gib:.2f} | {result.peak_rss_kib / 1024:.0f} "
            f"| {result.sha_ok}/{result.uploads} |"
        )
        for error in result.errors[:5]:
            print(f"  error: {error}")
        failed = failed or bool(result.errors)
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest-concurrency.md").write_text(text)
    print(text)
    return 1 if failed else 0


def run_memory(args: argparse.Namespace) -> int:
    args.chunk_size = args.chunk_size if args.chunk_size != 8 * MIB else 64 * MIB
    size = args.size if args.size != 2 * GIB else 4 * GIB
    setting = single_server_setting(args)
    source, sha = random_file(args.raw / f"source-{format_size(size)}.bin", size)
    lines = [
        "# Memory check",
        "",
        f"- **Date:** {_now()}",
        f"- **Load:** one {format_size(size)} upload, {setting.system} {setting.label}, "
        f"server {setting.server.name if setting.server else '-'}",
        "- **Machine:** " + ", ".join(f"{k} {v}" for k, v in machine(args.raw).items()),
        "- **Versions:** " + ", ".join(f"{k} {v}" for k, v in versions().items()),
        f"- {quiet_note(args.max_load)}",
        *[f"- {note}" for note in args.note],
        "",
        "| Run | Load | MB/s | Server CPU s/GiB | Server peak RSS MiB | SHA-256 ok |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    failed = False
    for run in range(args.runs or 1):
        settle_disk(args.drop_caches, [source])
        load = quiet.wait_until_quiet(args.max_load, args.quiet_wait)
        result = run_trial(
            setting, source, sha, args.raw / "work" / f"mem-{run}", run, args.raw / "logs"
        )
        result.load = load
        write_raw(args.raw / "memory.jsonl", {"date": _now(), **result.to_json()})
        lines.append(
            f"| {run + 1} | {_load_cell(load, args.max_load)} | {result.mb_per_s:.0f} "
            f"| {result.cpu_seconds / (size / GIB):.2f} "
            f"| {result.peak_rss_kib / 1024:.0f} | {'yes' if result.sha_ok else 'NO'} |"
        )
        if result.error:
            print(f"  error: {result.error}")
            failed = True
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest-memory.md").write_text(text)
    print(text)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.report:
        meta, results = read_raw(args.report)
        name = f"{args.name}-proxy" if meta.get("kind") == "proxy" else args.name
        print(publish(meta, results, args.out, name).read_text())
        return 0
    if args.concurrency:
        return run_concurrency(args)
    if args.memory:
        return run_memory(args)
    if args.proxy:
        return run_proxy(args)
    return run_matrix(args)


if __name__ == "__main__":
    sys.exit(main())
