"""One trial: start a fresh server, upload the file with one client, measure, verify, clean up."""

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench import profile
from bench.procfs import PeakSampler, thread_cpu_seconds, tree_cpu_seconds, tree_status_kib
from bench.systems import Server, Setting, Trial
from bench.units import megabytes_per_second

READY_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


@dataclass
class Result:
    key: str
    system: str
    label: str
    flush: bool
    round: int
    size: int
    seconds: float
    mb_per_s: float
    cpu_seconds: float  # server tree (or dd itself), during the upload only
    peak_rss_kib: int  # server tree
    sha_ok: bool
    error: str | None = None
    load: float | None = None  # 1-minute load average when the run started (bench.quiet)
    # the client process's user + system CPU, its waited-for children's included (dd: its own)
    client_cpu_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """count different free ports (a server, and a proxy in front of it)."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def settle_disk(drop_caches: bool, sources: list[Path]) -> None:
    """Start every trial with nothing dirty waiting for write-back (the last trial's or anyone's).

    With drop_caches the page cache is emptied too (root only), then the sources are read back in:
    an upload's source lives on the client machine, so reading it should not cost this disk.
    """
    os.sync()
    if drop_caches:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        for source in sources:
            with source.open("rb") as file:
                while file.read(16 * 1024 * 1024):
                    pass


def _wait_ready(process: subprocess.Popen[bytes], port: int, path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before it was ready")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError(f"server not answering on port {port} after {READY_TIMEOUT:.0f}s")


def start_server(server: Server, trial: Trial) -> subprocess.Popen[bytes]:
    server.prepare(trial)
    with (trial.workdir / "server.log").open("wb") as log:
        process = subprocess.Popen(
            server.command(trial),
            cwd=trial.workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stopping it reaches its children
        )
    try:
        _wait_ready(process, trial.port, server.health_path)
    except BaseException:
        stop_server(process)
        raise
    return process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # stragglers of a master that died first
        os.killpg(process.pid, signal.SIGKILL)


def client_environment(workdir: Path) -> dict[str, str]:
    """pyfiledrop's uploader keeps resume state per (file, URL): keep it out of ~/.cache and
    away from the next trial, which may get the same port."""
    return {**os.environ, "PYFILEDROP_STATE_DIR": str(workdir / "client-state")}


def client_timeout(size: int) -> float:
    """Give up on a client slower than 10 MB/s (plus a minute): it is stuck, not slow."""
    return 60 + size / 10e6


def _run_client(argv: list[str], workdir: Path, timeout: float) -> tuple[int, float, float, int]:
    """(exit code, seconds, CPU seconds, peak RSS KiB) of one client run; killed after timeout.

    The peak comes from sampling VmHWM: ru_maxrss would include this Python process's own
    size, inherited through fork before the exec.
    """
    with (workdir / "client.out").open("wb") as out, (workdir / "client.err").open("wb") as err:
        started = time.perf_counter()
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=client_environment(workdir)
        )
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        with PeakSampler(process.pid, interval=0.02, key="VmHWM") as sampler:
            _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    if seconds >= timeout:
        err_path = workdir / "client.err"
        err_path.write_text(err_path.read_text(errors="replace") + f"\nkilled after {timeout:.0f}s")
    return process.returncode, seconds, usage.ru_utime + usage.ru_stime, sampler.peak_kib


def find_stored(storage: Path, name: str, size: int) -> Path | None:
    """The uploaded file: under its own name, else the one file of the right size (renamed)."""
    expected = storage / name
    if expected.is_file():
        return expected
    if not storage.is_dir():
        return None
    candidates = [
        path
        for path in storage.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(storage).parts)
        and path.stat().st_size == size
    ]
    return candidates[0] if len(candidates) == 1 else None


def _tail(path: Path, limit: int = 400) -> str:
    try:
        return path.read_text(errors="replace")[-limit:].strip()
    except FileNotFoundError:
        return ""


def _keep_logs(workdir: Path, logs: Path) -> None:
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("server.log", "client.out", "client.err"):
        if (workdir / name).exists():
            shutil.copy(workdir / name, logs / f"{workdir.name}-{name}")


@dataclass
class _Timing:
    code: int  # the client's exit code
    seconds: float  # the client's wall time
    server_cpu: float  # the server tree's (dd's own without a server)
    client_cpu: float  # the client's own and its waited-for children's
    peak_kib: int  # the server tree's (dd's own without a server)


def _timed_client(
    setting: Setting,
    trial: Trial,
    process: subprocess.Popen[bytes] | None,
    timeout: float,
    profile_to: Path | None,
) -> _Timing:
    if process is None:  # the client is the whole system (dd)
        code, seconds, cpu, peak = _run_client(setting.client(trial), trial.workdir, timeout)
        return _Timing(code, seconds, cpu, cpu, peak)
    recorder = profile.start(process.pid, profile_to) if profile_to else None
    if recorder is not None:
        time.sleep(0.5)  # let py-spy attach before the upload starts
    threads_before = thread_cpu_seconds(process.pid)
    cpu_before = tree_cpu_seconds(process.pid)
    with PeakSampler(process.pid) as sampler:
        code, seconds, client_cpu, _ = _run_client(setting.client(trial), trial.workdir, timeout)
    cpu = tree_cpu_seconds(process.pid) - cpu_before
    if recorder is not None and profile_to is not None:
        profile.stop(recorder)
        threads = thread_cpu_seconds(process.pid)
        split = {
            name: round(value - threads_before.get(name, 0.0), 2) for name, value in threads.items()
        }
        profile_to.with_suffix(".threads.json").write_text(json.dumps(split))
    peak = sampler.peak_kib
    if setting.seed is None:  # else the high-water mark would be the seeding upload's
        peak = max(peak, tree_status_kib(process.pid, "VmHWM"))
    return _Timing(code, seconds, cpu, client_cpu, peak)


def _serve_and_time(
    setting: Setting, trial: Trial, timeout: float, profile_to: Path | None
) -> tuple[Trial, _Timing]:
    """Start the server (if any), seed it (if the setting does), time the client, stop it.
    RuntimeError when the server does not start or the seeding fails."""
    try:
        process = start_server(setting.server, trial) if setting.server else None
    except RuntimeError as problem:
        raise RuntimeError(f"server did not start: {problem}") from problem
    try:
        if setting.seed is not None:
            try:
                trial = replace(trial, fetch_url=setting.seed(trial))
            except (OSError, subprocess.SubprocessError) as problem:
                raise RuntimeError(f"seeding failed: {problem}") from problem
        return trial, _timed_client(setting, trial, process, timeout, profile_to)
    finally:
        if process is not None:
            stop_server(process)


def run_trial(
    setting: Setting,
    source: Path,
    source_sha: str,
    workdir: Path,
    round_number: int,
    logs: Path,
    profile_to: Path | None = None,
) -> Result:
    size = source.stat().st_size
    port, upstream_port = free_ports(2)
    trial = Trial(source, workdir, port, upstream_port)
    shutil.rmtree(workdir, ignore_errors=True)  # left over from an interrupted run
    workdir.mkdir(parents=True)
    trial.storage.mkdir()
    result = Result(
        key=setting.key,
        system=setting.system,
        label=setting.label,
        flush=setting.flush,
        round=round_number,
        size=size,
        seconds=0.0,
        mb_per_s=0.0,
        cpu_seconds=0.0,
        peak_rss_kib=0,
        sha_ok=False,
    )
    try:  # one broken system must not end the whole run
        trial, timing = _serve_and_time(setting, trial, client_timeout(size), profile_to)
    except RuntimeError as problem:
        _keep_logs(workdir, logs)
        shutil.rmtree(workdir)
        return replace(result, error=str(problem))
    result.seconds, result.cpu_seconds = timing.seconds, timing.server_cpu
    result.client_cpu_seconds, result.peak_rss_kib = timing.client_cpu, timing.peak_kib
    if timing.code != 0:
        result.error = f"client exit {timing.code}: {_tail(workdir / 'client.err')}"
    if setting.output is not None:
        stored = setting.output(trial)
    else:
        stored = find_stored(trial.storage, source.name, size)
    result.sha_ok = stored is not None and sha256_of(stored) == source_sha
    if result.error is None and not result.sha_ok:
        result.error = "stored file missing" if stored is None else "stored file differs"
    if result.error is not None:
        _keep_logs(workdir, logs)
    else:
        result.mb_per_s = megabytes_per_second(size, timing.seconds)
    shutil.rmtree(workdir)
    return result


@dataclass
class ConcurrentResult:
    system: str
    label: str
    uploads: int
    size_each: int
    seconds: float
    total_mb_s: float
    cpu_seconds: float
    peak_rss_kib: int
    sha_ok: int
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _wait_or_kill(process: subprocess.Popen[bytes], deadline: float) -> int:
    try:
        return process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def run_concurrent(
    setting: Setting, sources: list[tuple[Path, str]], workdir: Path, logs: Path
) -> ConcurrentResult:
    """All sources uploaded at once, one client process each, to one fresh server."""
    assert setting.server is not None
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    trials = [Trial(source, workdir, port) for source, _ in sources]
    trials[0].storage.mkdir()
    process = start_server(setting.server, trials[0])
    try:
        cpu_before = tree_cpu_seconds(process.pid)
        with PeakSampler(process.pid) as sampler:
            started = time.perf_counter()
            clients = []
            for index, trial in enumerate(trials):
                with (workdir / f"client-{index}.err").open("wb") as err:
                    clients.append(
                        subprocess.Popen(
                            setting.client(trial),
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=err,
                            env=client_environment(workdir),
                        )
                    )
            deadline = time.monotonic() + client_timeout(sum(s.stat().st_size for s, _ in sources))
            codes = [_wait_or_kill(client, deadline) for client in clients]
            seconds = time.perf_counter() - started
        cpu = tree_cpu_seconds(process.pid) - cpu_before
        peak = max(sampler.peak_kib, tree_status_kib(process.pid, "VmHWM"))
    finally:
        stop_server(process)
    errors = [
        f"client {index} exit {code}: {_tail(workdir / f'client-{index}.err')}"
        for index, code in enumerate(codes)
        if code != 0
    ]
    ok = 0
    for source, sha in sources:
        stored = find_stored(trials[0].storage, source.name, source.stat().st_size)
        if stored is not None and sha256_of(stored) == sha:
            ok += 1
        else:
            errors.append(f"{source.name}: stored file missing or different")
    if errors:
        logs.mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "server.log", logs / f"{workdir.name}-server.log")
    shutil.rmtree(workdir)
    total = sum(source.stat().st_size for source, _ in sources)
    return ConcurrentResult(
        system=setting.system,
        label=setting.label,
        uploads=len(sources),
        size_each=sources[0][0].stat().st_size,
        seconds=seconds,
        total_mb_s=megabytes_per_second(total, seconds),
        cpu_seconds=cpu,
        peak_rss_kib=peak,
        sha_ok=ok,
        errors=errors,
    )
