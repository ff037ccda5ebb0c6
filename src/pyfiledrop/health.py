"""What `/healthz` checks: the books take a read and a write, the storage folders are writable."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pyfiledrop.meta import queries
from pyfiledrop.storage import Storage
from pyfiledrop.uploads import Uploads

log = logging.getLogger("pyfiledrop")


async def failing_parts(core: Uploads) -> list[str]:
    """The names of the parts that fail ("database", "storage"); empty when all is well."""
    problems = []
    try:
        await core.db.run(queries.health_check, core.clock())
    except Exception as error:
        log.warning("health check: the database failed: %s", error)
        problems.append("database")
    if not storage_writable(core.storage):
        problems.append("storage")
    return problems


def storage_writable(storage: Storage) -> bool:
    folders = [getattr(storage, name, None) for name in ("root", "partials")]
    return all(
        os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)
        for folder in folders
        if isinstance(folder, Path)
    )
