"""`make dist`: the wheel and sdist, a zipapp (shiv) and a one-file executable (PyInstaller).

    python tools/dist.py [--outdir dist] [--only wheel,pyz,exe]

Run with the dev venv's Python (build, shiv and PyInstaller come with the `dev` extra). The
wheel is built from the sdist, so both carry the page's assets (setup.py's hook); the zipapp
is made from that wheel; the executable from the same source, with the package's data files.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("wheel", "pyz", "exe")
# The zipapp carries compiled modules for each of these (see build_pyz).
PYZ_PYTHONS = ("3.11", "3.12", "3.13", "3.14")
SCALE_OUT_MODULES = ("boto3", "botocore", "s3transfer", "psycopg", "psycopg_binary", "psycopg_pool")


def run(*command: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run(
        [str(part) for part in command], cwd=ROOT, check=True, env={**os.environ, **(env or {})}
    )


def build_wheel(outdir: Path) -> Path:
    for old in outdir.glob("pyfiledrop-*"):
        old.unlink()
    run(sys.executable, "-m", "build", "--outdir", outdir, ROOT)
    return the_wheel(outdir)


def the_wheel(outdir: Path) -> Path:
    wheels = sorted(outdir.glob("pyfiledrop-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"dist: expected one wheel in {outdir}, found {len(wheels)}")
    return wheels[0]


def build_pyz(outdir: Path, wheel: Path) -> Path:
    """The zipapp runs with any CPython in PYZ_PYTHONS: shiv packs one site-packages, built for
    this Python, so the compiled modules (httptools, uvloop) of the others are added beside
    this one's. Their file names carry the version (`*.cpython-312-*.so`), so they coexist."""
    target = outdir / "pyfiledrop.pyz"
    with tempfile.TemporaryDirectory(prefix="pyfiledrop-shiv-") as work:
        site = Path(work) / "site-packages"
        run(
            sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
            "--target", site, wheel,
        )  # fmt: skip
        compiled = [
            f"{dist.metadata['Name']}=={dist.version}"
            for dist in importlib.metadata.distributions(path=[str(site)])
            if any(str(name).endswith(".so") for name in dist.files or [])
        ]
        this = f"{sys.version_info.major}.{sys.version_info.minor}"
        for version in (v for v in PYZ_PYTHONS if v != this and compiled):
            wheels = Path(work) / f"wheels-{version}"
            run(
                sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                "--no-deps", "--only-binary=:all:", "--python-version", version,
                "--dest", wheels, *compiled,
            )  # fmt: skip
            for other in wheels.glob("*.whl"):
                add_missing_files(other, site)
        # The interpreter is found at run time (`python3 pyfiledrop.pyz`, or ./pyfiledrop.pyz).
        run(
            sys.executable, "-m", "shiv", "--site-packages", site, "--console-script",
            "pyfiledrop", "--python", "/usr/bin/env python3", "--output-file", target,
            "--reproducible", "--compressed",
        )  # fmt: skip
    return target


def add_missing_files(wheel: Path, site: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if ".dist-info/" not in name and not (site / name).exists():
                archive.extract(name, site)


def build_exe(outdir: Path) -> Path:
    with tempfile.TemporaryDirectory(prefix="pyfiledrop-pyinstaller-") as work:
        run(
            sys.executable, "-m", "PyInstaller", "--noconfirm", "--onefile", "--log-level", "WARN",
            "--name", "pyfiledrop", "--distpath", outdir, "--workpath", work, "--specpath", work,
            "--paths", ROOT / "src",
            # Templates, static files (with the vendored Dropzone) and SQL migrations.
            "--collect-data", "pyfiledrop",
            # Imported by name at run time: the subcommands, uvicorn's loop/protocol choices.
            "--collect-submodules", "pyfiledrop", "--collect-submodules", "uvicorn",
            # One node: SQLite and local disk. The scale-out backends (the s3 and postgres extras)
            # would triple the size; for those, install the wheel with its extras.
            *(f"--exclude-module={name}" for name in SCALE_OUT_MODULES),
            ROOT / "tools" / "frozen_main.py",
            env={"PYTHONPATH": str(ROOT / "src")},  # this source, not an installed copy
        )  # fmt: skip
    return outdir / "pyfiledrop"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--only", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS)
    )
    args = parser.parse_args()
    kinds = set(args.only.split(","))
    if unknown := kinds - set(KINDS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    outdir: Path = args.outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheel = build_wheel(outdir) if "wheel" in kinds or "pyz" in kinds else None
    if "pyz" in kinds and wheel is not None:
        build_pyz(outdir, wheel)
    if "exe" in kinds:
        build_exe(outdir)
    print(f"dist: {outdir} in {time.monotonic() - started:.0f} s", flush=True)
    for path in sorted(outdir.iterdir()):
        print(f"  {path.name}  {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
