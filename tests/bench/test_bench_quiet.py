from pathlib import Path

from bench.quiet import is_quiet, one_minute_load, wait_until_quiet


class FakeMachine:
    """A load that falls by a fixed step each poll, and a clock the sleeps advance."""

    def __init__(self, loads: list[float]) -> None:
        self.loads = loads
        self.now = 0.0
        self.said: list[str] = []

    def load(self) -> float:
        return self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_waits_until_the_load_drops_below_the_threshold() -> None:
    machine = FakeMachine([3.0, 1.2, 0.6, 0.4, 0.1])
    load = wait_until_quiet(0.5, 600, machine.load, machine.sleep, lambda: machine.now,
                            machine.said.append)  # fmt: skip
    assert load == 0.4
    assert machine.now == 15.0
    assert len(machine.said) == 1 and "below 0.5" in machine.said[0]


def test_gives_up_after_the_longest_wait_and_says_the_run_is_loaded() -> None:
    machine = FakeMachine([9.0])
    load = wait_until_quiet(0.5, 60, machine.load, machine.sleep, lambda: machine.now,
                            machine.said.append)  # fmt: skip
    assert load == 9.0
    assert machine.now >= 60
    assert "marked as loaded" in machine.said[-1]
    assert not is_quiet(load)


def test_a_quiet_machine_does_not_wait() -> None:
    machine = FakeMachine([0.1])
    assert wait_until_quiet(0.5, 60, machine.load, machine.sleep, lambda: machine.now) == 0.1
    assert machine.now == 0.0


def test_reads_the_one_minute_load(tmp_path: Path) -> None:
    path = tmp_path / "loadavg"
    path.write_text("0.42 0.30 0.20 1/123 4567\n")
    assert one_minute_load(path) == 0.42
    assert is_quiet(0.42) and not is_quiet(None)
