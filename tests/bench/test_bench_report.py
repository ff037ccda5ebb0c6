from pathlib import Path
from typing import Any

import pytest
from bench.report import chart, document, markdown_table, median, summarize, targets
from bench.units import GIB


def result(key: str, mb_s: float, **extra: Any) -> dict[str, Any]:
    system, label = key.split(" | ")
    base = {
        "key": key,
        "system": system,
        "label": label,
        "flush": "no flush" not in system,
        "round": 0,
        "size": 2 * GIB,
        "seconds": 2 * GIB / mb_s / 1e6 if mb_s else 1.0,
        "mb_per_s": mb_s,
        "cpu_seconds": 3.0,
        "peak_rss_kib": 40 * 1024,
        "sha_ok": True,
        "error": None,
        "load": 0.2,
    }
    return base | extra


def test_median_of_odd_even_and_empty() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, 2.0, 3.0, 10.0]) == 2.5
    assert median([]) == 0.0


def test_summarize_groups_by_setting_and_ignores_failed_runs_in_speed() -> None:
    rows = summarize(
        [
            result("nginx PUT | curl -T", 800),
            result("dd conv=fsync | bs=8MiB", 400),
            result("nginx PUT | curl -T", 600),
            result("nginx PUT | curl -T", 0, error="client exit 7", sha_ok=False),
            result("nginx PUT | curl -T", 1000, peak_rss_kib=50 * 1024),
        ]
    )
    assert [row.system for row in rows] == ["nginx PUT", "dd conv=fsync"]
    nginx = rows[0]
    assert (nginx.runs, nginx.ok_runs, nginx.sha_ok) == (4, 3, 3)
    assert (nginx.median_mb_s, nginx.min_mb_s, nginx.max_mb_s) == (800, 600, 1000)
    assert nginx.cpu_s_per_gib == pytest.approx(1.5)
    assert nginx.peak_rss_mib == 50
    assert nginx.errors == ("client exit 7",)


def test_markdown_table_has_one_line_per_setting() -> None:
    table = markdown_table(
        summarize([result("nginx PUT | curl -T", 812.4, client_cpu_seconds=1.0)])
    )
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("| System | Setting | Flush | MB/s (median) | min-max |")
    assert "| Server CPU s/GiB | Client CPU s/GiB |" in lines[0]
    assert lines[2] == (
        "| nginx PUT | curl -T | yes | 812 | 812-812 | 1.50 | 0.50 | 40 | 1/1 | 1/1 | 0.20 |"
    )


def test_results_from_before_client_cpu_was_recorded_show_a_dash() -> None:
    rows = summarize([result("nginx PUT | curl -T", 800)])  # no client_cpu_seconds key
    assert rows[0].client_cpu_s_per_gib is None
    assert "| 1.50 | - | 40 |" in markdown_table(rows)


def test_client_cpu_is_the_median_of_the_quiet_runs() -> None:
    rows = summarize(
        [
            result("pyfiledrop download | CLI defaults", 500, client_cpu_seconds=2.0),
            result("pyfiledrop download | CLI defaults", 500, client_cpu_seconds=4.0),
            result("pyfiledrop download | CLI defaults", 500, client_cpu_seconds=9.0, load=3.0),
            result("pyfiledrop download | CLI defaults", 500, client_cpu_seconds=5.0),
        ]
    )
    assert rows[0].client_cpu_s_per_gib == pytest.approx(2.0)  # 4 s per 2 GiB; loaded run out


def test_runs_on_a_loaded_machine_are_never_quoted() -> None:
    rows = summarize(
        [
            result("nginx PUT | curl -T", 2000, load=3.5),
            result("nginx PUT | curl -T", 800, load=0.3),
            result("nginx PUT | curl -T", 900, load=None),  # from before loads were recorded
            result("copyparty PUT | curl -T", 400, load=0.9),
        ]
    )
    nginx, copyparty = rows
    assert (nginx.median_mb_s, nginx.quiet_runs, nginx.runs, nginx.max_load) == (800, 1, 3, 0.3)
    assert copyparty.quiet_runs == 0
    assert "| copyparty PUT | curl -T | yes | - | - | - |" in markdown_table(rows)
    loosened = summarize([result("copyparty PUT | curl -T", 400, load=0.9)], max_load=1.0)
    assert loosened[0].median_mb_s == 400


def test_targets_compare_the_defaults_with_their_peers() -> None:
    rows = summarize(
        [
            result("pyfiledrop PUT (no flush) | curl -T", 600, cpu_seconds=3.2),
            result("nginx PUT | curl -T", 1000),
            result("pyfiledrop Dropzone (no flush) | CLI defaults", 450),
            result("pyfiledrop Dropzone (no flush) | 64MiB x4", 1200),
            result("copyparty u2c | -j 2", 500),
            result("copyparty u2c | -j 4", 250),
            result("pyfiledrop Dropzone (flush) | CLI defaults", 400),
            result("dd conv=fsync | bs=8MiB", 500),
            result("pyfiledrop Dropzone (flush) | page default (auto) x4", 300),
            result("pyfiledrop Dropzone (flush) | 64MiB x4", 400),
        ]
    )
    lines = targets(rows)
    assert "PUT no flush vs nginx PUT" in lines[0]
    assert "= **0.60x** (target >= 0.7x: missed by 14%)" in lines[0]
    assert "(copyparty u2c, -j 4) = **1.80x** (target >= 1.5x: met)" in lines[1]
    assert "= **0.80x** (target >= 0.9x: missed by 11%)" in lines[2]
    assert "= **0.75x** (target >= 0.8x: missed by 6%)" in lines[3]
    assert "PUT: worst 1.60 s" in lines[4]
    assert "(target <= 1.5 s: missed)" in lines[4]
    assert "Dropzone chunks: worst 1.50 s" in lines[5]
    assert "(target <= 2.0 s: met)" in lines[5]


def test_targets_are_left_out_without_pyfiledrop() -> None:
    assert targets(summarize([result("nginx PUT | curl -T", 800)])) == []


def test_document_and_chart_are_written(tmp_path: Path) -> None:
    rows = summarize([result("nginx PUT | curl -T", 800), result("dd conv=fsync | bs=8MiB", 400)])
    text = document(
        "Upload benchmark",
        rows,
        {"Date": "2026-11-25 17:00 UTC"},
        {"nproc": "2"},
        {"nginx": "1.22.1"},
        ["noisy"],
    )
    assert text.startswith("# Upload benchmark\n")
    assert "- **Machine:** nproc 2" in text
    assert "| nginx PUT | curl -T |" in text
    assert "- noisy" in text
    pytest.importorskip("matplotlib")
    chart(rows, "test", tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes().startswith(b"\x89PNG")


def test_targets_compare_each_client_through_nginx_with_it_direct() -> None:
    rows = summarize(
        [
            result("pyfiledrop PUT (no flush) | curl -T", 1000),
            result("pyfiledrop via nginx (no flush) | curl -T", 500),
            result("pyfiledrop Dropzone (no flush) | CLI defaults", 800),
            result("pyfiledrop via nginx (no flush) | CLI defaults", 720),
            result("pyfiledrop Dropzone (no flush) | page default (auto) x4", 400),
            result("pyfiledrop via nginx (no flush) | page default (auto) x4", 320),
        ]
    )
    lines = [line for line in targets(rows) if "via nginx vs direct" in line]
    assert lines == [
        "- via nginx vs direct, curl -T: 500 (curl -T) / 1000 (pyfiledrop PUT (no flush), "
        "curl -T) = **0.50x** (target >= 0.8x: missed by 38%)",
        "- via nginx vs direct, CLI defaults: 720 (CLI defaults) / 800 (pyfiledrop Dropzone "
        "(no flush), CLI defaults) = **0.90x** (target >= 0.8x: met)",
        "- via nginx vs direct, page default (auto) x4: 320 (page default (auto) x4) / 400 "
        "(pyfiledrop Dropzone (no flush), page default (auto) x4) = **0.80x** "
        "(target >= 0.8x: met)",
    ]


def test_via_nginx_lines_need_both_rows_and_quiet_runs() -> None:
    direct_only = summarize([result("pyfiledrop PUT (no flush) | curl -T", 1000)])
    assert not [line for line in targets(direct_only) if "via nginx" in line]
    proxied_only = summarize([result("pyfiledrop via nginx (no flush) | curl -T", 900)])
    assert targets(proxied_only) == []
    loaded = summarize(
        [
            result("pyfiledrop PUT (no flush) | curl -T", 1000),
            result("pyfiledrop via nginx (no flush) | curl -T", 900, load=5.0),
        ]
    )
    assert not [line for line in targets(loaded) if "via nginx" in line]


def test_a_proxy_document_lists_the_ratios_under_targets() -> None:
    rows = summarize(
        [
            result("pyfiledrop Dropzone (no flush) | CLI defaults", 800),
            result("pyfiledrop via nginx (no flush) | CLI defaults", 720),
        ]
    )
    text = document("Upload benchmark: through nginx", rows, {}, {}, {}, [])
    assert "Targets (quiet runs only):\n\n- via nginx vs direct, CLI defaults:" in text
    assert "**0.90x** (target >= 0.8x: met)" in text


def test_targets_for_tus_downloads_and_the_uploaders_cpu() -> None:
    rows = summarize(
        [
            result("pyfiledrop tus (no flush) | tus-js-client 8MiB", 600),
            result("pyfiledrop tus (flush) | tus-js-client 8MiB", 300),
            result("@tus/server | tus-js-client 8MiB", 400),
            result("pyfiledrop download | CLI defaults", 600),
            result("pyfiledrop download --no-flush | verifies, no flush", 900),
            result("curl download from pyfiledrop | curl -o", 1000),
            result("pyfiledrop Dropzone (no flush) | CLI defaults", 500, client_cpu_seconds=2.8),
            result("pyfiledrop Dropzone (flush) | CLI defaults", 450, client_cpu_seconds=3.4),
        ]
    )
    lines = targets(rows)
    tus = next(line for line in lines if "tus-js-client into pyfiledrop" in line)
    assert "600 (tus-js-client 8MiB) / 400 (@tus/server, tus-js-client 8MiB)" in tus
    assert "= **1.50x** (target >= 1.2x: met)" in tus
    download = next(line for line in lines if "pyfiledrop download vs curl" in line)
    assert "600 (CLI defaults) / 1000 (curl download from pyfiledrop, curl -o)" in download
    assert "= **0.60x** (target >= 0.8x: missed by 25%)" in download
    (no_flush,) = [line for line in lines if "--no-flush" in line]
    assert no_flush.startswith("- pyfiledrop download --no-flush (not the defaults) vs curl")
    assert "900 (verifies, no flush) / 1000 (curl download from pyfiledrop, curl -o)" in no_flush
    assert "= **0.90x** (target >= 0.8x: met)" in no_flush
    client = next(line for line in lines if line.startswith("- client CPU"))
    assert "worst 1.70 s (pyfiledrop Dropzone (flush), CLI defaults)" in client
    assert "(target <= 1.5 s: missed)" in client


def test_the_articles_1mb_row_is_a_reference_not_a_target() -> None:
    rows = summarize(
        [
            result("pyfiledrop Dropzone (flush) | page default (auto) x4", 400, cpu_seconds=3.0),
            result("pyfiledrop Dropzone (flush) | article's 1MB x4", 300, cpu_seconds=6.0),
            result("pyfiledrop Dropzone (flush) | 64MiB x4", 450, cpu_seconds=3.0),
        ]
    )
    lines = targets(rows)
    assert "400 (page default (auto) x4) / 450" in lines[0]
    assert "Dropzone chunks: worst 1.50 s" in lines[1]
    assert not any("article" in line for line in lines)
