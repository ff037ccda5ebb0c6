"""Entry point of the PyInstaller executable (tools/dist.py)."""

import multiprocessing

from pyfiledrop.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # `--workers N` starts copies of this executable
    raise SystemExit(main())
