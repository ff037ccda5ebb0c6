"""Freed memory goes back to the system: after a burst of uploads the receive buffers' pages
stayed resident (glibc keeps what isn't at the top of its heap) until the process ended."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyfiledrop import malloc
from tests.harness import running_app

# Buffers of an upload burst freed around a few survivors, then given back; prints RssAnon (KiB)
# before and after.
FRAGMENT_THEN_GIVE_BACK = """
import re
from pyfiledrop import malloc

def anon():
    return int(re.search(r"RssAnon:\\s+(\\d+)", open("/proc/self/status").read()).group(1))

buffers = [bytearray(64 * 1024 + (n % 7) * 4096) for n in range(1200)]  # ~90 MiB
survivors = buffers[::8]
del buffers
before = anon()
assert malloc.give_back_free_memory()
print(before, anon())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_buffers_between_survivors_go_back_to_the_system() -> None:
    result = subprocess.run(
        [sys.executable, "-c", FRAGMENT_THEN_GIVE_BACK],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    before, after = map(int, result.stdout.split())
    assert before - after > 50 * 1024  # of the ~78 MiB freed, held before the trim


def test_the_server_gives_freed_memory_back_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(malloc, "give_back_free_memory", lambda: calls.append(True) or False)
    with running_app(tmp_path) as app:
        assert app.client.get("/healthz").status_code == 200
    assert calls  # the first call comes at start-up; then one every TRIM_SECONDS
