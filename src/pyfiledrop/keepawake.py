"""`--keep-awake`: the host does not go to sleep while any upload is in progress.

Held from the first upload request until none has been in flight for GRACE_SECONDS (the pauses
between chunks are far shorter), then released. The way to hold it comes from wakepy (Windows
`SetThreadExecutionState`, macOS `caffeinate`, the desktop session's D-Bus inhibitors on Linux);
a headless Linux server has no desktop session, so there we fall back to a logind inhibitor
through `systemd-inhibit`. Where nothing works the server says so once at start and runs on.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("pyfiledrop")

GRACE_SECONDS = 30.0
TICK_SECONDS = 5.0
WHO = "pyfiledrop"
WHY = "uploads in progress"
INHIBIT_PROBE_TIMEOUT_SECONDS = 10.0


class Hold(Protocol):
    """The host kept awake, until `release`."""

    def release(self) -> None: ...


Method = Callable[[], Hold | None]  # acquire a hold, or None where this way does not work


class KeepAwake:
    """The state machine: count the uploads in flight, hold while busy, release after a grace."""

    def __init__(
        self,
        acquire: Method,
        clock: Callable[[], float] = time.monotonic,
        grace: float = GRACE_SECONDS,
    ) -> None:
        self.acquire = acquire
        self.clock = clock
        self.grace = grace
        self.in_flight = 0
        self.hold: Hold | None = None
        self.idle_since: float | None = None
        self.failed = False  # acquiring failed once: don't retry (and warn) on every request

    @property
    def held(self) -> bool:
        return self.hold is not None

    def activity(self, delta: int) -> None:
        """+1 when an upload request starts, -1 when it ends."""
        self.in_flight = max(0, self.in_flight + delta)
        if self.in_flight == 0:
            self.idle_since = self.clock()
            return
        self.idle_since = None
        if self.hold is None and not self.failed:
            try:
                self.hold = self.acquire()
            except Exception:  # a broken D-Bus or inhibitor must not fail the upload
                log.debug("keep-awake: acquiring failed", exc_info=True)
                self.hold = None
            if self.hold is None:
                self.failed = True
                log.warning("keep-awake: could not keep this machine awake; uploads go on")
            else:
                log.info("keep-awake: holding the machine awake while uploads are in progress")

    def tick(self) -> None:
        """Called now and then: release once idle for the grace period."""
        if self.hold is None or self.idle_since is None:
            return
        if self.clock() - self.idle_since >= self.grace:
            self.close()
            log.info("keep-awake: no uploads in progress; the machine may sleep again")

    def close(self) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            hold.release()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            self.tick()


# --- the ways to hold ------------------------------------------------------------------------


class WakepyHold:
    def __init__(self, mode: object) -> None:
        self.mode = mode

    def release(self) -> None:
        self.mode.__exit__(None, None, None)  # type: ignore[attr-defined]


def wakepy_method() -> WakepyHold | None:
    try:
        from wakepy import keep
    except ImportError:
        return None
    mode = keep.running(on_fail="pass")
    mode.__enter__()
    if not mode.active:
        mode.__exit__(None, None, None)
        return None
    return WakepyHold(mode)


class InhibitHold:
    """`systemd-inhibit` running `cat` on our pipe: if this process dies, the pipe closes, `cat`
    ends and logind drops the lock, so a crash can't leave the machine sleepless."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def release(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(INHIBIT_PROBE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _inhibit_command(*command: str) -> list[str] | None:
    program = shutil.which("systemd-inhibit")
    if program is None:
        return None
    return [program, "--what=sleep:idle", f"--who={WHO}", f"--why={WHY}", "--mode=block", *command]


def systemd_inhibit_method() -> InhibitHold | None:
    probe = _inhibit_command("true")
    cat = shutil.which("cat")
    if probe is None or cat is None:
        return None
    try:
        # The probe answers at once: 0 where logind took (and dropped) the lock, else an error.
        checked = subprocess.run(
            probe, capture_output=True, timeout=INHIBIT_PROBE_TIMEOUT_SECONDS, check=False
        )
        if checked.returncode != 0:
            return None
        command = _inhibit_command(cat)
        assert command is not None
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return InhibitHold(process)


def first_working(*methods: Method) -> Method:
    def acquire() -> Hold | None:
        for method in methods:
            hold = method()
            if hold is not None:
                return hold
        return None

    return acquire


DEFAULT_METHOD = first_working(wakepy_method, systemd_inhibit_method)


def check_at_start(acquire: Method = DEFAULT_METHOD) -> bool:
    """Try once at start (and let go): the one warning comes now, not mid-upload."""
    try:
        hold = acquire()
    except Exception as error:  # a broken D-Bus must not stop the server
        log.warning("keep-awake: unavailable here (%s); the server runs without it", error)
        return False
    if hold is None:
        log.warning(
            "keep-awake: no way to keep this machine awake here (no desktop session inhibitor,"
            " no logind); the server runs without it"
        )
        return False
    hold.release()
    return True
