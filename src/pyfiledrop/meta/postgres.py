"""PostgreSQL through psycopg 3, for several server processes (or machines) sharing one view.

The statements in `queries.py` are written for SQLite (`?` placeholders, rows readable by index
and by name, `BEGIN IMMEDIATE`). A thin connection wrapper is the whole dialect seam: it turns `?`
into `%s`, `BEGIN IMMEDIATE` into `BEGIN`, and gives rows that behave like `sqlite3.Row`. Under
PostgreSQL's READ COMMITTED each statement sees what committed before it, and an UPDATE waits for
the row's other writers, so the queries' transactions keep their meaning (see `record_chunk`).

The same numbered migration files apply, with SQLite's 64-bit INTEGER and REAL spelled as
PostgreSQL's BIGINT and DOUBLE PRECISION; an advisory lock lets processes start together.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

import psycopg
from psycopg import errors as pg_errors

from pyfiledrop.meta.sqlite import apply_migrations
from pyfiledrop.meta.threads import CallThreads

T = TypeVar("T")

DB_THREADS = 4
CONNECT_TIMEOUT_SECONDS = 10
TRANSIENT_RETRIES = 5
MIGRATION_LOCK_KEY = 0x70796664  # "pyfd": one migrator at a time across processes
_TYPES = (
    (re.compile(r"\bINTEGER\b", re.IGNORECASE), "BIGINT"),
    (re.compile(r"\bREAL\b", re.IGNORECASE), "DOUBLE PRECISION"),
)


def postgres_dialect(script: str) -> str:
    for pattern, replacement in _TYPES:
        script = pattern.sub(replacement, script)
    return script


class Row(tuple[Any, ...]):
    """A row readable by index and by column name, and convertible with dict(), like sqlite3.Row."""

    names: tuple[str, ...] = ()

    def keys(self) -> tuple[str, ...]:
        return self.names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self.names.index(key))
        return tuple.__getitem__(self, key)


def _row_factory(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], Row]:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> Row:
        row = Row(values)
        row.names = names
        return row

    return make


class Connection:
    """The subset of sqlite3.Connection that `queries` uses, over a psycopg connection."""

    def __init__(self, raw: psycopg.Connection[Row]) -> None:
        self.raw = raw
        self._statements: dict[str, str] = {}

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> psycopg.Cursor[Row]:
        statement = self._statements.get(sql)
        if statement is None:
            statement = sql.replace("%", "%%").replace("?", "%s")
            if statement.strip().upper() == "BEGIN IMMEDIATE":
                statement = "BEGIN"
            self._statements[sql] = statement
        return self.raw.execute(statement, parameters)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def connect(url: str) -> Connection:
    raw = psycopg.connect(
        url, autocommit=True, row_factory=_row_factory, connect_timeout=CONNECT_TIMEOUT_SECONDS
    )
    return Connection(raw)


def migrate(connection: Connection) -> None:
    connection.execute("BEGIN")
    try:
        connection.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_KEY,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version BIGINT PRIMARY KEY, applied DOUBLE PRECISION)"
        )
        apply_migrations(connection, postgres_dialect)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


class PostgresDatabase:
    """Like `sqlite.SQLiteDatabase`, with a few threads, each holding its own connection."""

    def __init__(self, url: str, threads: int = DB_THREADS) -> None:
        self.url = url
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._threads = CallThreads("pfd-pg", threads)
        self._threads.run_sync(self._call, migrate, ())

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.raw.closed:
            connection = connect(self.url)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        result = await self._threads.run(self._call, function, args)
        return cast(T, result)

    def run_sync(self, function: Callable[..., T], *args: Any) -> T:
        return cast(T, self._threads.run_sync(self._call, function, args))

    def _call(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        for attempt in range(TRANSIENT_RETRIES):
            connection = self._connection()
            try:
                return function(connection, *args)
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                # Rare lock-order clashes between processes; each query is safe to run again.
                self._rollback(connection)
                if attempt == TRANSIENT_RETRIES - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
            except psycopg.OperationalError:
                # The server restarted or the link broke: the next call connects again.
                connection.close()
                raise
            except BaseException:
                self._rollback(connection)
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _rollback(connection: Connection) -> None:
        if not connection.raw.closed and connection.in_transaction:
            connection.raw.execute("ROLLBACK")

    def close(self) -> None:
        self._threads.close()
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
