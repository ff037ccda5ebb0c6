"""Copy the page's front-end libraries from node_modules (installed by `npm ci` from
package-lock.json) into the package. Run by `make assets` and by every setuptools build
(setup.py), so a wheel or sdist never ships without them. Standard library only.

A new npm asset goes in ASSETS, not in the Makefile, so that wheels get it too."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT / "node_modules"
VENDOR = ROOT / "src" / "pyfiledrop" / "web" / "static" / "vendor"

# Where in the package (under static/vendor/) <- where in node_modules/.
# Only Dropzone's script and licence: the page has its own stylesheet.
ASSETS = {
    "dropzone/dropzone-min.js": "dropzone/dist/dropzone-min.js",
    "dropzone/LICENSE": "dropzone/LICENSE",
}


class AssetsMissing(Exception):
    pass


def copy_assets() -> str:
    """Copy every asset from node_modules; without node_modules (a build from an unpacked
    sdist) the copies already in the package must be complete. Raises AssetsMissing."""
    sources = {target: NODE_MODULES / source for target, source in ASSETS.items()}
    if all(path.is_file() for path in sources.values()):
        for target, source in sources.items():
            (VENDOR / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, VENDOR / target)
        return f"copied {len(sources)} page asset(s) from node_modules into {VENDOR}"
    if all((VENDOR / target).is_file() for target in ASSETS):
        return f"page assets already in {VENDOR} (no node_modules)"
    missing = next(path for path in sources.values() if not path.is_file())
    raise AssetsMissing(
        f"the page's assets are missing: {missing} not found; run `npm ci` in {ROOT} first "
        "(package-lock.json pins them), then build again"
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
