"""Build hook: every wheel and sdist carries the page's assets (see tools/assets.py).
All other metadata is in pyproject.toml."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import SetupError

_spec = importlib.util.spec_from_file_location(
    "pyfiledrop_assets", Path(__file__).resolve().parent / "tools" / "assets.py"
)
assert _spec is not None and _spec.loader is not None
assets: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(assets)


def _copy_assets() -> None:
    try:
        print(assets.copy_assets())
    except assets.AssetsMissing as error:
        raise SetupError(f"pyfiledrop build: {error}") from None


class BuildPyWithAssets(build_py):
    def run(self) -> None:
        _copy_assets()
        super().run()


class SdistWithAssets(sdist):
    def run(self) -> None:
        _copy_assets()  # before the file list is made, so the copies are in it
        super().run()


setup(cmdclass={"build_py": BuildPyWithAssets, "sdist": SdistWithAssets})
