"""CPU time and memory of a process tree, read from /proc (Linux only)."""

import os
import threading
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def parse_stat_cpu_ticks(stat_line: str) -> int:
    """utime + stime + cutime + cstime from a /proc/<pid>/stat line.

    The command name (field 2) may hold spaces and parentheses, so split after its last ')'.
    Waited-for children's time (cutime, cstime) is included so short-lived helpers count too.
    """
    fields = stat_line[stat_line.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime..cstime are fields 14..17.
    return sum(int(value) for value in fields[11:15])


def parse_stat_own_cpu_ticks(stat_line: str) -> int:
    """utime + stime only: per-thread stat lines carry the whole process's cutime/cstime."""
    fields = stat_line[stat_line.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])


def parse_status_kib(status_text: str, key: str) -> int:
    """A 'Key:   1234 kB' value from /proc/<pid>/status, in KiB; 0 when absent."""
    for line in status_text.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            return int(value.split()[0])
    return 0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def tree_pids(root: int) -> list[int]:
    """root and all its live descendants."""
    found = [root]
    index = 0
    while index < len(found):
        pid = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            children = _read(f"/proc/{pid}/task/{task}/children") or ""
            found.extend(int(child) for child in children.split())
    return found


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the tree, including reaped children."""
    ticks = 0
    for pid in tree_pids(root):
        line = _read(f"/proc/{pid}/stat")
        if line:
            ticks += parse_stat_cpu_ticks(line)
    return ticks / CLOCK_TICKS


def thread_group_name(comm: str) -> str:
    """'ThreadPoolExec' / 'asyncio_3' / 'python3' -> a name that groups alike threads."""
    return comm.strip().rstrip("0123456789").rstrip("_-") or comm.strip()


def thread_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds of every thread in the tree, summed by thread name (without its number)."""
    seconds: dict[str, float] = {}
    for pid in tree_pids(root):
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            comm = _read(f"/proc/{pid}/task/{task}/comm")
            line = _read(f"/proc/{pid}/task/{task}/stat")
            if comm is None or line is None:
                continue
            name = "main thread" if task == str(pid) else thread_group_name(comm)
            ticks = parse_stat_own_cpu_ticks(line)
            seconds[name] = seconds.get(name, 0.0) + ticks / CLOCK_TICKS
    return seconds


def tree_status_kib(root: int, key: str) -> int:
    """Sum of one /proc/<pid>/status field (VmRSS, VmHWM) over the tree, in KiB."""
    total = 0
    for pid in tree_pids(root):
        text = _read(f"/proc/{pid}/status")
        if text:
            total += parse_status_kib(text, key)
    return total


@dataclass
class PeakSampler:
    """Samples the tree's summed RSS in a thread; peak_kib is the largest sum seen.

    With key "VmHWM" it follows each process's own high-water mark instead, which also catches
    peaks between samples (good for a single process such as dd).
    """

    root: int
    interval: float = 0.05
    key: str = "VmRSS"
    peak_kib: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, tree_status_kib(self.root, self.key))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakSampler":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
