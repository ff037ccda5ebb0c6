"""`--keep-awake`: the state machine with a fake method and a fake clock (no sleeping), the app
driving it from upload requests, one warning where nothing works, and logind where there is one."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from pyfiledrop import keepawake
from pyfiledrop.keepawake import GRACE_SECONDS, KeepAwake
from tests.conftest import ServerFactory
from tests.harness import FakeClock, app_client


@dataclasses.dataclass
class FakeMethod:
    works: bool = True
    acquired: int = 0
    released: int = 0

    @property
    def holding(self) -> bool:
        return self.acquired > self.released

    def __call__(self) -> FakeMethod | None:
        if not self.works:
            return None
        self.acquired += 1
        return self

    def release(self) -> None:
        self.released += 1


def test_held_while_uploads_are_in_flight_released_after_the_grace() -> None:
    clock, method = FakeClock(), FakeMethod()
    awake = KeepAwake(method, clock)
    awake.tick()
    assert not method.holding  # nothing to do while idle

    awake.activity(1)
    awake.activity(1)  # two uploads at once: one hold
    assert method.holding and method.acquired == 1
    awake.activity(-1)
    clock.now += GRACE_SECONDS * 10
    awake.tick()
    assert method.holding  # one upload still in flight

    awake.activity(-1)
    clock.now += GRACE_SECONDS - 1
    awake.tick()
    assert method.holding  # within the grace: the pause between two chunks

    awake.activity(1)  # the next chunk comes: still the same hold
    awake.activity(-1)
    clock.now += GRACE_SECONDS - 1
    awake.tick()
    assert method.holding and method.acquired == 1

    clock.now += 1
    awake.tick()
    assert not method.holding and method.released == 1

    awake.activity(1)  # a new upload later: held again
    assert method.holding and method.acquired == 2
    awake.close()
    assert not method.holding


def test_a_method_that_fails_warns_once_and_uploads_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    method = FakeMethod(works=False)
    awake = KeepAwake(method, FakeClock())
    with caplog.at_level(logging.WARNING, logger="pyfiledrop"):
        for _ in range(5):
            awake.activity(1)
            awake.activity(-1)
    assert not awake.held
    assert [r.getMessage() for r in caplog.records if "keep-awake" in r.getMessage()] == [
        "keep-awake: could not keep this machine awake; uploads go on"
    ]

    def broken() -> None:
        raise RuntimeError("D-Bus went away")

    crashing = KeepAwake(broken, FakeClock())
    crashing.activity(1)  # must not raise into the request
    assert not crashing.held


def test_check_at_start_lets_go_and_reports(caplog: pytest.LogCaptureFixture) -> None:
    method = FakeMethod()
    assert keepawake.check_at_start(method) is True
    assert method.acquired == method.released == 1
    with caplog.at_level(logging.WARNING, logger="pyfiledrop"):
        assert keepawake.check_at_start(FakeMethod(works=False)) is False
    assert len(caplog.records) == 1 and "runs without it" in caplog.records[0].getMessage()


def test_the_app_holds_during_an_upload_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    method = FakeMethod()
    seen_during: list[bool] = []

    def watching() -> FakeMethod | None:
        hold = method()
        seen_during.append(True)
        return hold

    monkeypatch.setattr(keepawake, "DEFAULT_METHOD", watching)
    with app_client(tmp_path, keep_awake=True) as client:
        assert client.get("/healthz").status_code == 200
        assert method.acquired == 0  # not an upload
        assert client.put("/put/a.bin", content=b"x" * 1000).status_code == 201
        assert seen_during == [True]
        awake = client.app.state.keep_awake  # type: ignore[attr-defined]
        assert awake.held and awake.in_flight == 0 and awake.idle_since is not None
    assert not method.holding  # shutting down lets go


def test_where_nothing_works_the_server_warns_once_and_runs_on(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    empty = tmp_path / "no-tools"
    empty.mkdir()
    # No systemd-inhibit on PATH and no session bus: no method can work, on any Linux machine.
    server = server_factory(
        "--keep-awake",
        env={"PATH": str(empty), "DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"},
    )
    assert httpx.put(f"{server.url}/put/a.bin", content=b"y" * 1000, timeout=30).status_code == 201
    server.stop()
    text = server.log_path.read_text()
    warnings = [line for line in text.splitlines() if "keep-awake" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], text[-2000:]
    assert "wakepy" not in text  # its own account of every method it tried stays quiet
    assert "Listening on" in text


def _logind_reason() -> str | None:
    if shutil.which("systemd-inhibit") is None:
        return "systemd-inhibit is not installed"
    probe = subprocess.run(
        ["systemd-inhibit", "--list", "--no-pager"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode != 0:
        return f"no logind here ({probe.stderr.strip() or probe.returncode})"
    return None


@pytest.mark.skipif(_logind_reason() is not None, reason=str(_logind_reason()))
def test_systemd_inhibit_holds_a_logind_lock_and_lets_it_go() -> None:
    def listed() -> bool:
        out = subprocess.run(
            ["systemd-inhibit", "--list", "--no-pager"], capture_output=True, text=True, timeout=10
        ).stdout
        return any(keepawake.WHO in line and "sleep" in line for line in out.splitlines())

    def becomes(wanted: bool) -> bool:
        # logind registers and drops the lock as the helper starts and ends: poll, bounded.
        deadline = time.monotonic() + 10
        while listed() != wanted:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    hold = keepawake.systemd_inhibit_method()
    assert hold is not None
    try:
        assert becomes(True)
    finally:
        hold.release()
    assert becomes(False)


def fake_inhibit(folder: Path, works: bool) -> None:
    """A stand-in `systemd-inhibit` (logind's tool): runs its command, or fails like no logind."""
    script = folder / "systemd-inhibit"
    body = 'while [ "${1#--}" != "$1" ]; do shift; done\nexec "$@"\n' if works else "exit 1\n"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)


def test_the_inhibitor_lives_exactly_as_long_as_the_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_inhibit(tmp_path, works=True)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    hold = keepawake.systemd_inhibit_method()
    assert hold is not None
    assert hold.process.poll() is None  # holding: the command waits on our pipe
    hold.release()
    assert hold.process.returncode == 0  # the pipe closed, the command ended: lock dropped


def test_no_logind_means_no_inhibitor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_inhibit(tmp_path, works=False)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert keepawake.systemd_inhibit_method() is None
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert keepawake.systemd_inhibit_method() is None
