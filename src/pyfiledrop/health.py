"""What `/healthz` checks: the books take a read and a write, the storage folders are writable."""

from __future__ import annotations

import logging

from pyfiledrop.meta import queries
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
    check = core.caps.self_check  # an object store has none: its failures show per request
    if check is not None and not check.writable():
        problems.append("storage")
    return problems
