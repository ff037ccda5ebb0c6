import os
import subprocess
import sys
import time

from bench.procfs import (
    PeakSampler,
    parse_stat_cpu_ticks,
    parse_stat_own_cpu_ticks,
    parse_status_kib,
    thread_cpu_seconds,
    thread_group_name,
    tree_cpu_seconds,
    tree_pids,
    tree_status_kib,
)

# A command name with spaces and a ')' must not shift the fields after it.
STAT = "4242 (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 5 1000 50"
STATUS = "Name:\tpython\nVmPeak:\t  20000 kB\nVmHWM:\t   9000 kB\nVmRSS:\t   8000 kB\n"


def test_parse_stat_sums_own_and_children_cpu_ticks() -> None:
    assert parse_stat_cpu_ticks(STAT) == 7 + 3 + 2 + 1


def test_parse_status_reads_kib_fields() -> None:
    assert parse_status_kib(STATUS, "VmHWM") == 9000
    assert parse_status_kib(STATUS, "VmRSS") == 8000
    assert parse_status_kib(STATUS, "VmSwap") == 0


def test_tree_readers_see_a_real_child_and_its_work() -> None:
    # The child burns CPU and holds 64 MiB, then waits to be measured.
    code = "import time\nb = bytearray(64 << 20)\nt = time.process_time()\n"
    code += "while time.process_time() - t < 0.3: pass\nprint('ready', flush=True)\ntime.sleep(10)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n"
        assert child.pid in tree_pids(os.getpid())
        assert tree_cpu_seconds(child.pid) >= 0.25
        assert tree_status_kib(child.pid, "VmHWM") >= 64 * 1024
        with PeakSampler(child.pid, interval=0.01) as sampler:
            time.sleep(0.05)
        assert sampler.peak_kib >= 64 * 1024
    finally:
        child.kill()
        child.wait()
    assert tree_cpu_seconds(child.pid) == 0.0  # gone: nothing to read, no error


def test_thread_names_group_numbered_threads() -> None:
    assert thread_group_name("pyfiledrop_3") == "pyfiledrop"
    assert thread_group_name("libuv-worker\n") == "libuv-worker"
    assert thread_group_name("1234") == "1234"


def test_per_thread_stat_ignores_process_wide_children_time() -> None:
    assert parse_stat_own_cpu_ticks(STAT) == 7 + 3


def test_thread_cpu_of_this_process_names_the_main_thread() -> None:
    assert "main thread" in thread_cpu_seconds(os.getpid())
