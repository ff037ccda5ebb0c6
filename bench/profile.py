"""Where a server spends its CPU during an upload: py-spy samples, summed by function.

Only the thread holding the GIL is sampled (`--gil`): py-spy counts threads waiting in a thread
pool or a syscall as busy otherwise. Work done without the GIL (hashing, pwrite) shows in the
per-thread CPU split read from /proc instead.
"""

import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"


@dataclass(frozen=True)
class Cost:
    frame: str
    self_share: float  # of all samples, this frame on top of the stack
    total_share: float  # of all samples, this frame anywhere in the stack


def parse_collapsed(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """py-spy's raw format: 'outer;inner;innermost count' per line."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


_LINE = re.compile(r":\d+\)$")


def function_of(frame: str) -> str:
    """'name (file.py:12)' -> 'name (file.py)': one row per function, not per line."""
    return _LINE.sub(")", frame)


def top_costs(stacks: Counter[tuple[str, ...]], limit: int = 15) -> list[Cost]:
    """Functions by their own (self) samples, with their inclusive share alongside."""
    total = sum(stacks.values())
    if total == 0:
        return []
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, count in stacks.items():
        functions = [function_of(frame) for frame in stack]
        own[functions[-1]] += count
        for function in set(functions):
            inclusive[function] += count
    return [
        Cost(frame, count / total, inclusive[frame] / total)
        for frame, count in own.most_common(limit)
    ]


def format_costs(costs: list[Cost], samples: int) -> str:
    lines = [f"{samples} samples of the thread holding the GIL", "self%  total%  function (file)"]
    lines += [f"{c.self_share:6.1%} {c.total_share:6.1%}  {c.frame}" for c in costs]
    return "\n".join(lines)


def available() -> bool:
    return PY_SPY.exists() or shutil.which("py-spy") is not None


def start(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample pid (and its children) until stop(); collapsed stacks go to output."""
    binary = str(PY_SPY) if PY_SPY.exists() else "py-spy"
    argv = [binary, "record", "--pid", str(pid), "--rate", "200", "--subprocesses"]
    argv += ["--format", "raw", "--output", str(output), "--gil", "--nonblocking"]
    with output.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def stop(recorder: subprocess.Popen[bytes]) -> None:
    os.kill(recorder.pid, signal.SIGINT)  # py-spy writes its output on Ctrl-C
    try:
        recorder.wait(30)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.wait()
