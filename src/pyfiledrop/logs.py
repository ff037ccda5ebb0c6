"""The server's log: plain text lines or JSON lines, with nothing in them that grants access.

File ids are download capabilities, delete tokens travel in query strings, and names come from
clients (they may hold CR/LF): so paths lose their query, ids are cut to a reference that finds
the file in `pyfiledrop files list` but can't fetch it, and client text is escaped.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

ACCESS_LOGGER = "pyfiledrop.access"
REF_CHARS = 8  # 48 bits of a 144-bit id: enough to find a file, far too few to guess its link
MAX_LOGGED_TEXT = 300
_CAPABILITY_PATH = re.compile(r"^(/download/|/api/files/)([A-Za-z0-9_-]+)")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def ref(file_id: str) -> str:
    """How logs name a file: the start of its id (the whole id is its download link)."""
    return file_id[:REF_CHARS] + "…" if len(file_id) > REF_CHARS else file_id


def printable(text: str) -> str:
    """Client text made safe for one log line: control characters escaped, length bounded."""
    escaped = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if len(escaped) > MAX_LOGGED_TEXT:
        return escaped[:MAX_LOGGED_TEXT] + "…"
    return escaped


def loggable_path(path: str) -> str:
    """A request path as logged: file ids cut to a reference (the query is never passed in)."""
    return printable(_CAPABILITY_PATH.sub(lambda m: m.group(1) + ref(m.group(2)), path))


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str) -> None:
    """The root handler, on stderr; uvicorn's own loggers go through it too."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonLines())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # wakepy explains every method it tried at INFO: `keepawake` sums that up in one line.
    logging.getLogger("wakepy").setLevel(logging.WARNING)
