"""What the numbers were measured on: machine, disk and versions of everything under test."""

import json
import os
import platform
import subprocess
from pathlib import Path

from bench.systems import PEERS_BIN, PYFILEDROP_BIN, REPO


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    lines = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode != 0 or not lines:
        return "not installed"
    return lines[0].strip()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def disk_of(path: Path) -> str:
    """Device, filesystem and whether it spins, for the folder the files are written to."""
    best = ("?", "?", "")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, fstype = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) >= len(best[2]):
            best = (device, fstype, mount)
    device, fstype, _ = best
    kind = ""
    rotational = Path("/sys/block") / Path(device).name / "queue" / "rotational"
    if rotational.exists():
        kind = ", rotational" if rotational.read_text().strip() == "1" else ", non-rotational"
    return f"{device} ({fstype}{kind})"


def machine(path: Path) -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "RAM": f"{_memory_gib():.1f} GiB",
        "CPU": _cpu_model(),
        "disk": disk_of(path),
        "kernel": platform.release(),
    }


def _peer_version(package: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({package!r}))"
    return _first_line([str(PEERS_BIN / "python"), "-c", code])


def _npm_version(package: str) -> str:
    try:
        manifest = json.loads((REPO / "node_modules" / package / "package.json").read_text())
        return str(manifest["version"])
    except (OSError, ValueError, KeyError):
        return "not installed"


def _commit() -> str:
    return _first_line(["git", "-C", str(PYFILEDROP_BIN.parent.parent), "log", "-1", "--format=%h"])


def versions() -> dict[str, str]:
    code = "import importlib.metadata as m; print(m.version('pyfiledrop'))"
    return {
        "pyfiledrop": f"{_first_line([str(PYFILEDROP_BIN / 'python'), '-c', code])} "
        f"(commit {_commit()})",
        "Python (pyfiledrop)": _first_line([str(PYFILEDROP_BIN / "python"), "--version"]),
        "nginx": _first_line(["nginx", "-v"]).removeprefix("nginx version: "),
        "copyparty": _peer_version("copyparty"),
        "uploadserver": _peer_version("uploadserver"),
        "curl": " ".join(_first_line(["curl", "--version"]).split()[:2]),
        "dd": _first_line(["dd", "--version"]),
        "Node": _first_line(["node", "--version"]),
        **{
            name: _npm_version(name) for name in ("tus-js-client", "@tus/server", "@tus/file-store")
        },
    }
