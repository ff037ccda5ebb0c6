"""The command-line client: `pyfiledrop upload` and `pyfiledrop download`."""

import sys

# httpx's __init__ imports its own command-line tool (click, pygments, rich: ~40 ms of CPU at
# every start) unless that import fails; the client never runs it.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
