"""How transfers show their progress: rich bars on a terminal, plain log lines elsewhere.

Progress goes to stderr so that stdout carries only results (summary lines or `--json` objects).
Worker threads call `advance` for every piece they send; both reporters keep that cheap.
"""

import sys
import threading
import time
from typing import TYPE_CHECKING, Protocol, TextIO

from pyfiledrop.client.sizes import format_size

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

LOG_INTERVAL_SECONDS = 2.0


class Reporter(Protocol):
    def add_file(self, name: str, size: int) -> int: ...

    def start_file(self, handle: int, already_done: int) -> None:
        """The transfer of this file begins; `already_done` bytes were sent by an earlier run."""

    def advance(self, handle: int, nbytes: int) -> None: ...

    def note(self, message: str) -> None:
        """A line worth reading (resuming, starting over and why, a retry)."""

    def end_file(self, handle: int) -> None: ...

    def result(self, line: str) -> None:
        """One result line for stdout (a summary or a JSON object)."""

    def close(self) -> None: ...


class RichReporter:
    def __init__(self, console: "Console") -> None:
        # Imported here: rich costs ~30 ms of CPU to import, for terminals only.
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=None),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._files: list[TaskID] = []
        self._total: TaskID | None = None
        self._progress.start()

    def add_file(self, name: str, size: int) -> int:
        self._files.append(self._progress.add_task(name, total=size, start=False))
        return len(self._files) - 1

    def start_file(self, handle: int, already_done: int) -> None:
        task = self._files[handle]
        if self._total is None and len(self._files) > 1:
            everything = sum(t.total or 0 for t in self._progress.tasks)
            self._total = self._progress.add_task("total", total=everything)
        self._progress.start_task(task)
        self._progress.update(task, completed=already_done)
        if self._total is not None:
            self._progress.advance(self._total, already_done)

    def advance(self, handle: int, nbytes: int) -> None:
        self._progress.advance(self._files[handle], nbytes)
        if self._total is not None:
            self._progress.advance(self._total, nbytes)

    def note(self, message: str) -> None:
        self._progress.console.print(message, markup=False, highlight=False)

    def end_file(self, handle: int) -> None:
        task = self._files[handle]
        done = self._progress.tasks[task].completed
        total = self._progress.tasks[task].total or 0
        # A file that failed or was already complete still settles its share of the total.
        if self._total is not None and done < total:
            self._progress.advance(self._total, total - done)
        self._progress.stop_task(task)

    def result(self, line: str) -> None:
        if sys.stdout.isatty():
            # The same terminal as the bars: print above them, not through them.
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, flush=True)

    def close(self) -> None:
        self._progress.stop()


class LogReporter:
    """For pipes and log files: a line when a file starts, every few seconds, and at the end."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._sizes: list[int] = []
        self._done: list[int] = []
        self._started: list[float] = []
        self._sent_at_start: list[int] = []
        self._last_log: list[float] = []

    def _line(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def add_file(self, name: str, size: int) -> int:
        with self._lock:
            self._names.append(name)
            self._sizes.append(size)
            self._done.append(0)
            self._started.append(0.0)
            self._sent_at_start.append(0)
            self._last_log.append(0.0)
            return len(self._names) - 1

    def start_file(self, handle: int, already_done: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._done[handle] = already_done
            self._sent_at_start[handle] = already_done
            self._started[handle] = now
            self._last_log[handle] = now
        size = format_size(self._sizes[handle])
        if already_done:
            self._line(
                f"{self._names[handle]}: {size}, continuing after {format_size(already_done)}"
            )
        else:
            self._line(f"{self._names[handle]}: {size}, starting")

    def advance(self, handle: int, nbytes: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._done[handle] += nbytes
            if now - self._last_log[handle] < LOG_INTERVAL_SECONDS:
                return
            self._last_log[handle] = now
            done, size = self._done[handle], self._sizes[handle]
            elapsed = now - self._started[handle]
            speed = (done - self._sent_at_start[handle]) / 1e6 / elapsed if elapsed else 0.0
        percent = 100 * done // size if size else 100
        self._line(
            f"{self._names[handle]}: {percent}% {format_size(done)} of {format_size(size)}"
            f" {speed:.0f} MB/s"
        )

    def note(self, message: str) -> None:
        self._line(message)

    def end_file(self, handle: int) -> None:
        pass

    def result(self, line: str) -> None:
        print(line, flush=True)

    def close(self) -> None:
        pass


def make_reporter(stream: TextIO | None = None) -> Reporter:
    stream = stream if stream is not None else sys.stderr
    if stream.isatty():
        from rich.console import Console

        return RichReporter(Console(file=stream))
    return LogReporter(stream)
