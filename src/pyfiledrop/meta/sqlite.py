"""SQLite in WAL mode, reached through one connection on one dedicated thread.

One writer thread serializes this process's statements without locks and keeps them off the event
loop; several processes on one data folder are handled by SQLite's own locking (busy timeout).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar, cast

from pyfiledrop.errors import NoSpace, Unavailable
from pyfiledrop.meta.threads import CallThreads

T = TypeVar("T")
log = logging.getLogger("pyfiledrop")

# A database held locked from outside makes every request wait: each statement waits at most
# BUSY_TIMEOUT_MS, and a call gives up after about DB_WAIT_SECONDS with a 503 and Retry-After.
BUSY_TIMEOUT_MS = 5_000
WAL_SWITCH_SECONDS = 30.0  # how long a starting process keeps asking for WAL mode
WAL_RETRY_SECONDS = 0.05
DB_WAIT_SECONDS = 8.0
CONGESTED_BUSY_TIMEOUT_MS = 100
LOCKED_RETRIES = 5
DAMAGED = ("malformed", "not a database")


def migration_scripts() -> list[tuple[int, str]]:
    """(version, SQL) of every numbered migration file, in order; both backends apply them."""
    folder = resources.files("pyfiledrop.meta") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    versions = [version for version, _ in found]
    if len(set(versions)) != len(versions):
        # Two branches each added "their" next number: one would be skipped silently.
        raise RuntimeError(f"two migration files share a number in {folder}: renumber one")
    return sorted(found)


def use_wal(connection: Any, clock: Callable[[], float] = time.monotonic) -> None:
    """Switch to WAL. A second process opening the same file at the same moment (`--workers`)
    can get "database is locked" here at once, without the busy handler (seen: one of two workers
    failed its start-up and uvicorn stopped the whole server mid-upload): try again, within the
    start-up budget."""
    deadline = clock() + WAL_SWITCH_SECONDS
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or clock() > deadline:
                raise
        time.sleep(WAL_RETRY_SECONDS)


def connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.row_factory = sqlite3.Row
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    use_wal(connection)
    # NORMAL in WAL mode survives a process crash (SIGKILL) without an fsync per commit.
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute("PRAGMA foreign_keys = ON")
    migrate(connection)
    return connection


def apply_migrations(connection: Any, dialect: Callable[[str], str] = lambda sql: sql) -> None:
    """Run the numbered scripts not yet recorded in `schema_migrations`, inside the caller's
    transaction; `dialect` adapts a script's SQL to the database (types)."""
    done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
    for version, script in migration_scripts():
        if version in done:
            continue
        for statement in dialect(script).split(";"):
            if statement.strip():
                connection.execute(statement)
        connection.execute(
            "INSERT INTO schema_migrations (version, applied) VALUES (?, ?)",
            (version, time.time()),
        )


def migrate(connection: sqlite3.Connection) -> None:
    connection.execute("BEGIN IMMEDIATE")
    try:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied REAL)"
        )
        apply_migrations(connection)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


class SQLiteDatabase:
    """Runs functions of a connection on the database thread: `await db.run(fn, *args)`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = CallThreads("pyfiledrop-db")
        self._connection = self._thread.run_sync(connect, path)
        self._congested = False  # a call gave up on a lock, and none has succeeded since

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        result = await self._thread.run(self._call, function, args, time.monotonic())
        return cast(T, result)

    def run_sync(self, function: Callable[..., T], *args: Any) -> T:
        return cast(T, self._thread.run_sync(self._call, function, args, time.monotonic()))

    def _call(self, function: Callable[..., T], args: tuple[Any, ...], submitted: float) -> T:
        # The wait counts from submission: calls queued behind ones stuck on a lock held from
        # outside would otherwise each wait their own busy timeout, one after the other.
        started = submitted
        if time.monotonic() - started > DB_WAIT_SECONDS:
            raise Unavailable("the database is busy; try again shortly")
        for attempt in range(LOCKED_RETRIES):
            try:
                changes = self._connection.total_changes
                result = function(self._connection, *args)
                if self._connection.total_changes != changes:  # a write went through (reads
                    self._set_congested(False)  # pass in WAL mode while writes are locked out)
                return result
            except sqlite3.OperationalError as error:
                if "disk is full" in str(error):  # SQLITE_FULL: the data folder's disk
                    self._roll_back()
                    raise NoSpace("the server's disk is full; try again later") from error
                # busy_timeout covers most contention; "locked" can still escape it under load.
                if "locked" not in str(error):
                    raise
                waited = time.monotonic() - started
                if (
                    self._congested
                    or attempt == LOCKED_RETRIES - 1
                    or waited + BUSY_TIMEOUT_MS / 1000 > DB_WAIT_SECONDS
                ):
                    # Nothing was counted; the client may send the same request again.
                    self._set_congested(True)
                    raise Unavailable("the database is busy; try again shortly") from error
                self._roll_back()
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.DatabaseError as error:
                if not any(sign in str(error) for sign in DAMAGED):
                    raise
                self._roll_back()
                log.error("the database %s is damaged: %s", self.path, error)
                raise Unavailable("the server's database is damaged") from error
        raise AssertionError("unreachable")

    def _set_congested(self, congested: bool) -> None:
        """After a call gave up on a lock, the next ones wait only briefly until one succeeds:
        requests that reach the database one after another (the admission lock) don't each
        wait a whole busy timeout while the lock is held from outside."""
        if congested == self._congested:
            return
        self._congested = congested
        wait = CONGESTED_BUSY_TIMEOUT_MS if congested else BUSY_TIMEOUT_MS
        self._connection.execute(f"PRAGMA busy_timeout = {wait}")

    def _roll_back(self) -> None:
        if self._connection.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._connection.execute("ROLLBACK")

    def close(self) -> None:
        self._thread.run_sync(self._connection.close)
        self._thread.close()
