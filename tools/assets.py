"""Copy the page's front-end libraries from node_modules (installed by `npm ci` from
package-lock.json; run here if node_modules lacks them) into the package. Run by `make assets`
and by every setuptools build (setup.py), so a wheel or sdist never ships without them.
Standard library only.

A new npm asset goes in ASSETS, not in the Makefile, so that wheels get it too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "src" / "pyfiledrop" / "web" / "static" / "vendor"

# Where in the package (under static/vendor/) <- where in node_modules/.
# Only Dropzone's script and licence (the page has its own stylesheet), and qrcode-generator's
# script (its licence is in its header).
ASSETS = {
    "dropzone/dropzone-min.js": "dropzone/dist/dropzone-min.js",
    "dropzone/LICENSE": "dropzone/LICENSE",
    "qrcode-generator/qrcode.js": "qrcode-generator/dist/qrcode.js",
}


class AssetsMissing(Exception):
    pass


def copy_assets() -> str:
    """Copy every asset from node_modules, running `npm ci` first in a fresh checkout (where
    npm is installed); without the lockfile (a build from an unpacked sdist) the copies already
    in the package must be complete. Raises AssetsMissing."""
    sources = {target: NODE_MODULES / source for target, source in ASSETS.items()}
    missing = not all(path.is_file() for path in sources.values())
    if missing and (ROOT / "package-lock.json").is_file() and shutil.which("npm"):
        print("running `npm ci --omit=dev` for the page's assets", file=sys.stderr, flush=True)
        npm = ["npm", "ci", "--omit=dev", "--no-audit", "--no-fund", "--silent"]
        if subprocess.run(npm, cwd=ROOT, check=False).returncode != 0:
            raise AssetsMissing(f"`npm ci` failed in {ROOT}: the page's assets can't be copied")
    if all(path.is_file() for path in sources.values()):
        for target, source in sources.items():
            (VENDOR / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, VENDOR / target)
        return f"copied {len(sources)} page asset(s) from node_modules into {VENDOR}"
    if all((VENDOR / target).is_file() for target in ASSETS):
        return f"page assets already in {VENDOR} (no node_modules)"
    absent = next(path for path in sources.values() if not path.is_file())
    raise AssetsMissing(
        f"the page's assets are missing: {absent} not found; install npm and run `npm ci` in "
        f"{ROOT} (package-lock.json pins them), then build again"
    )


def main() -> int:
    try:
        print(copy_assets())
    except AssetsMissing as error:
        print(f"pyfiledrop build: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
