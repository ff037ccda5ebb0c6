"""Turn trial results into the committed Markdown table and bar chart."""

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.downloads import (
    CURL_FROM_PYFILEDROP,
    NO_FLUSH_LABEL,
    PYFILEDROP_DOWNLOAD,
    PYFILEDROP_DOWNLOAD_NO_FLUSH,
)
from bench.quiet import QUIET_LOAD, is_quiet
from bench.systems import ARTICLE, CLI_DEFAULTS, PAGE_DEFAULT, PROXIED_CLIENTS, VIA_NGINX
from bench.tus import TUS_CLIENT, TUS_INTO_PYFILEDROP, TUS_PEER
from bench.units import GIB


@dataclass(frozen=True)
class Row:
    system: str
    label: str
    flush: bool
    runs: int
    ok_runs: int
    median_mb_s: float
    min_mb_s: float
    max_mb_s: float
    cpu_s_per_gib: float
    peak_rss_mib: float
    sha_ok: int
    errors: tuple[str, ...]
    quiet_runs: int = 0  # good runs that started below the load threshold: the quoted ones
    max_load: float | None = None  # highest starting load among the quoted runs
    client_cpu_s_per_gib: float | None = None  # None: not recorded (results from before it was)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(results: Iterable[Mapping[str, Any]], max_load: float = QUIET_LOAD) -> list[Row]:
    """One row per setting, in the order settings first appear. Failed runs count in `runs` only;
    figures come from the good runs that started on a quiet machine (below `max_load`) only."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["key"], []).append(result)
    rows = []
    for runs in groups.values():
        good = [run for run in runs if run["error"] is None]
        quoted = [run for run in good if is_quiet(run.get("load"), max_load)]
        speeds = [run["mb_per_s"] for run in quoted]
        client_cpu = [
            run["client_cpu_seconds"] / (run["size"] / GIB)
            for run in quoted
            if run.get("client_cpu_seconds") is not None
        ]
        rows.append(
            Row(
                system=runs[0]["system"],
                label=runs[0]["label"],
                flush=runs[0]["flush"],
                runs=len(runs),
                ok_runs=len(good),
                median_mb_s=median(speeds),
                min_mb_s=min(speeds, default=0.0),
                max_mb_s=max(speeds, default=0.0),
                cpu_s_per_gib=median([run["cpu_seconds"] / (run["size"] / GIB) for run in quoted]),
                peak_rss_mib=max((run["peak_rss_kib"] for run in good), default=0) / 1024,
                sha_ok=sum(1 for run in runs if run["sha_ok"]),
                errors=tuple(sorted({run["error"] for run in runs if run["error"]})),
                quiet_runs=len(quoted),
                max_load=max((run["load"] for run in quoted), default=None),
                client_cpu_s_per_gib=median(client_cpu) if client_cpu else None,
            )
        )
    return rows


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| System | Setting | Flush | MB/s (median) | min-max | Server CPU s/GiB "
        "| Client CPU s/GiB | Peak RSS MiB | SHA-256 ok | Quiet runs | Load (max) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        shown = row.quiet_runs > 0
        spread = f"{row.min_mb_s:.0f}-{row.max_mb_s:.0f}" if shown else "-"
        speed = f"{row.median_mb_s:.0f}" if shown else "-"
        cpu = f"{row.cpu_s_per_gib:.2f}" if shown else "-"
        client = row.client_cpu_s_per_gib
        client_cpu = f"{client:.2f}" if shown and client is not None else "-"
        load = f"{row.max_load:.2f}" if row.max_load is not None else "-"
        lines.append(
            f"| {row.system} | {row.label} | {'yes' if row.flush else 'no'} "
            f"| {speed} | {spread} | {cpu} | {client_cpu} "
            f"| {row.peak_rss_mib:.0f} | {row.sha_ok}/{row.runs} "
            f"| {row.quiet_runs}/{row.runs} | {load} |"
        )
    return "\n".join(lines)


def best(rows: Sequence[Row], system_prefix: str) -> Row | None:
    candidates = [row for row in rows if row.system.startswith(system_prefix) and row.quiet_runs]
    return max(candidates, key=lambda row: row.median_mb_s, default=None)


def _ratio_line(name: str, mine: Row | None, theirs: Row | None, target: float) -> str | None:
    if mine is None or theirs is None or theirs.median_mb_s == 0:
        return None
    ratio = mine.median_mb_s / theirs.median_mb_s
    verdict = "met" if ratio >= target else f"missed by {(target - ratio) / target:.0%}"
    return (
        f"- {name}: {mine.median_mb_s:.0f} ({mine.label}) / {theirs.median_mb_s:.0f} "
        f"({theirs.system}, {theirs.label}) = **{ratio:.2f}x** (target >= {target}x: {verdict})"
    )


def _row(rows: Sequence[Row], system: str, label: str) -> Row | None:
    return next((r for r in rows if r.system == system and label in r.label and r.quiet_runs), None)


def _cpu_line(name: str, rows: Sequence[Row], target: float) -> str | None:
    if not rows:
        return None
    worst = max(rows, key=lambda row: row.cpu_s_per_gib)
    verdict = "met" if worst.cpu_s_per_gib <= target else "missed"
    return (
        f"- server CPU per GiB, {name}: worst {worst.cpu_s_per_gib:.2f} s "
        f"({worst.system}, {worst.label}) (target <= {target} s: {verdict})"
    )


def _client_cpu_line(name: str, rows: Sequence[Row], target: float) -> str | None:
    measured = [row for row in rows if row.client_cpu_s_per_gib is not None]
    if not measured:
        return None
    worst = max(measured, key=lambda row: row.client_cpu_s_per_gib or 0.0)
    cpu = worst.client_cpu_s_per_gib or 0.0
    return (
        f"- client CPU per GiB, {name}: worst {cpu:.2f} s ({worst.system}, {worst.label}) "
        f"(target <= {target} s: {'met' if cpu <= target else 'missed'})"
    )


def targets(rows: Sequence[Row]) -> list[str]:
    """The speed targets of the data-path issue and of the documented nginx block (issue 16),
    from the quiet runs' medians; each only when both of its rows are there."""
    put = _row(rows, "pyfiledrop PUT (no flush)", "curl -T")
    cli = _row(rows, "pyfiledrop Dropzone (no flush)", CLI_DEFAULTS)
    cli_flush = _row(rows, "pyfiledrop Dropzone (flush)", CLI_DEFAULTS)
    page = _row(rows, "pyfiledrop Dropzone (flush)", PAGE_DEFAULT)
    quiet = [row for row in rows if row.system.startswith("pyfiledrop") and row.quiet_runs]
    # The article's 1 MB chunks are a reference row, not a setting pyfiledrop offers by default.
    chunked = [row for row in quiet if "Dropzone" in row.system and row.label != ARTICLE]
    lines = [
        _ratio_line("PUT no flush vs nginx PUT", put, best(rows, "nginx PUT"), 0.7),
        _ratio_line(
            "CLI defaults no flush vs copyparty u2c -j 4",
            cli,
            _row(rows, "copyparty u2c", "-j 4"),
            1.5,
        ),
        _ratio_line(
            "CLI defaults flush vs dd conv=fsync", cli_flush, best(rows, "dd conv=fsync"), 0.9
        ),
        _ratio_line(
            "page default vs best Dropzone (flush)",
            page,
            best([row for row in rows if row.label != ARTICLE], "pyfiledrop Dropzone (flush)"),
            0.8,
        ),
        _ratio_line(
            "tus-js-client into pyfiledrop vs into @tus/server",
            _row(rows, f"{TUS_INTO_PYFILEDROP} (no flush)", TUS_CLIENT),
            _row(rows, TUS_PEER, TUS_CLIENT),
            1.2,
        ),
        _ratio_line(
            "pyfiledrop download vs curl from the same server",
            _row(rows, PYFILEDROP_DOWNLOAD, CLI_DEFAULTS),
            _row(rows, CURL_FROM_PYFILEDROP, "curl -o"),
            0.8,
        ),
        _ratio_line(
            "pyfiledrop download --no-flush (not the defaults) vs curl from the same server",
            _row(rows, PYFILEDROP_DOWNLOAD_NO_FLUSH, NO_FLUSH_LABEL),
            _row(rows, CURL_FROM_PYFILEDROP, "curl -o"),
            0.8,
        ),
        *[
            _ratio_line(
                f"via nginx vs direct, {label}",
                _row(rows, VIA_NGINX, label),
                _row(rows, direct, label),
                0.8,
            )
            for label, direct in PROXIED_CLIENTS
        ],
        _cpu_line("PUT", [row for row in quiet if "PUT" in row.system], 1.5),
        _cpu_line("Dropzone chunks", chunked, 2.0),
        _client_cpu_line(
            "`pyfiledrop upload` defaults (with its SHA-256)",
            [row for row in (cli, cli_flush) if row is not None],
            1.5,
        ),
    ]
    return [line for line in lines if line is not None]


def document(
    title: str,
    rows: Sequence[Row],
    header: Mapping[str, str],
    machine: Mapping[str, str],
    versions: Mapping[str, str],
    notes: Sequence[str],
) -> str:
    parts = [f"# {title}", ""]
    parts += [f"- **{name}:** {value}" for name, value in header.items()]
    parts += ["- **Machine:** " + ", ".join(f"{key} {value}" for key, value in machine.items())]
    parts += ["- **Versions:** " + ", ".join(f"{key} {value}" for key, value in versions.items())]
    parts += ["", markdown_table(rows), ""]
    target_lines = targets(rows)
    if target_lines:
        parts += ["Targets (quiet runs only):", "", *target_lines, ""]
    if notes:
        parts += ["Notes:", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(parts)


def chart(rows: Sequence[Row], title: str, path: Path) -> None:
    """Horizontal bars of median MB/s with min-max whiskers, one colour per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.quiet_runs]
    systems = list(dict.fromkeys(row.system for row in shown))
    palette = plt.get_cmap("tab10")
    colours = [palette(systems.index(row.system) % 10) for row in shown]
    figure, axes = plt.subplots(figsize=(10, 0.28 * len(shown) + 1.6))
    positions = range(len(shown))
    axes.barh(
        positions,
        [row.median_mb_s for row in shown],
        xerr=[
            [row.median_mb_s - row.min_mb_s for row in shown],
            [row.max_mb_s - row.median_mb_s for row in shown],
        ],
        color=colours,
        error_kw={"elinewidth": 0.8, "capsize": 2},
    )
    axes.set_yticks(list(positions), [f"{row.system}: {row.label}" for row in shown], fontsize=7)
    axes.invert_yaxis()
    axes.margins(y=0.01)
    axes.set_xlabel("MB/s (median, whiskers: min-max)")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
