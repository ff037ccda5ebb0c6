"""Wait for a quiet machine before each run, and say how quiet it was.

A figure taken while other work shares the 2 cores says little (runs at load 10-22 once showed
2.2x a peer that a quiet run put at 0.85x), so every run waits for the 1-minute load average to
drop below a threshold and records the load it started at. Runs that started above it are kept in
the raw results but marked, and the report leaves them out of the quoted figures.
"""

import time
from collections.abc import Callable
from pathlib import Path

QUIET_LOAD = 0.5
QUIET_WAIT_SECONDS = 900.0
POLL_SECONDS = 5.0


def one_minute_load(loadavg: Path = Path("/proc/loadavg")) -> float:
    return float(loadavg.read_text().split()[0])


def wait_until_quiet(
    threshold: float = QUIET_LOAD,
    max_wait: float = QUIET_WAIT_SECONDS,
    load: Callable[[], float] = one_minute_load,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = print,
) -> float:
    """Block until the load is below `threshold` (at most `max_wait` s); return the load then."""
    deadline = clock() + max_wait
    current = load()
    told = False
    while current >= threshold and clock() < deadline:
        if not told:
            say(f"waiting for the 1-minute load ({current:.2f}) to drop below {threshold}")
            told = True
        sleep(POLL_SECONDS)
        current = load()
    if current >= threshold:
        say(f"load still {current:.2f} after {max_wait:.0f} s: this run is marked as loaded")
    return current


def is_quiet(load: float | None, threshold: float = QUIET_LOAD) -> bool:
    """Runs recorded before loads were recorded (None) count as loaded: nobody knows."""
    return load is not None and load < threshold
