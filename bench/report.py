"""Turn trial results into the committed Markdown table and bar chart."""

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def summarize(results: Iterable[Mapping[str, Any]]) -> list[Row]:
    """One row per setting, in the order settings first appear; failed runs count in `runs` only."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault(result["key"], []).append(result)
    rows = []
    for runs in groups.values():
        good = [run for run in runs if run["error"] is None]
        speeds = [run["mb_per_s"] for run in good]
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
                cpu_s_per_gib=median([run["cpu_seconds"] / (run["size"] / GIB) for run in good]),
                peak_rss_mib=max((run["peak_rss_kib"] for run in good), default=0) / 1024,
                sha_ok=sum(1 for run in runs if run["sha_ok"]),
                errors=tuple(sorted({run["error"] for run in runs if run["error"]})),
            )
        )
    return rows


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| System | Setting | Flush | MB/s (median) | min-max | CPU s/GiB | Peak RSS MiB "
        "| SHA-256 ok |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        spread = f"{row.min_mb_s:.0f}-{row.max_mb_s:.0f}" if row.ok_runs else "-"
        lines.append(
            f"| {row.system} | {row.label} | {'yes' if row.flush else 'no'} "
            f"| {row.median_mb_s:.0f} | {spread} | {row.cpu_s_per_gib:.2f} "
            f"| {row.peak_rss_mib:.0f} | {row.sha_ok}/{row.runs} |"
        )
    return "\n".join(lines)


def best(rows: Sequence[Row], system_prefix: str) -> Row | None:
    candidates = [row for row in rows if row.system.startswith(system_prefix) and row.ok_runs]
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


def targets(rows: Sequence[Row]) -> list[str]:
    """The issue's speed targets, computed from the medians; empty when pyfiledrop did not run."""
    no_flush = best(rows, "pyfiledrop Dropzone (no flush)")
    flush = best(rows, "pyfiledrop Dropzone (flush)")
    page = next(
        (
            row
            for row in rows
            if row.system == "pyfiledrop Dropzone (flush)" and "page" in row.label
        ),
        None,
    )
    lines = [
        _ratio_line(
            "Dropzone no flush vs copyparty u2c", no_flush, best(rows, "copyparty u2c"), 1.5
        ),
        _ratio_line("Dropzone no flush vs nginx PUT", no_flush, best(rows, "nginx PUT"), 1.0),
        _ratio_line("Dropzone flush vs dd conv=fsync", flush, best(rows, "dd conv=fsync"), 0.9),
        _ratio_line("page default vs best Dropzone (flush)", page, flush, 0.8),
    ]
    cpu_rows = [row for row in rows if row.system.startswith("pyfiledrop") and row.ok_runs]
    if cpu_rows:
        worst = max(cpu_rows, key=lambda row: row.cpu_s_per_gib)
        lines.append(
            f"- pyfiledrop server CPU per GiB: worst {worst.cpu_s_per_gib:.2f} s "
            f"({worst.system}, {worst.label}) (target <= 2 s)"
        )
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
        parts += ["Targets (issue 7):", "", *target_lines, ""]
    if notes:
        parts += ["Notes:", "", *[f"- {note}" for note in notes], ""]
    return "\n".join(parts)


def chart(rows: Sequence[Row], title: str, path: Path) -> None:
    """Horizontal bars of median MB/s with min-max whiskers, one colour per system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.ok_runs]
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
