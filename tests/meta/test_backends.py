"""The same queries on SQLite and PostgreSQL: types, and the guards several processes need."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.meta import Database, StoredFile, Upload, open_database, queries
from pyfiledrop.meta.sqlite import migration_scripts

BIG = 5 * 1024**4 + 12345  # 5 TiB: does not fit a 32-bit INTEGER


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    if request.param == "sqlite":
        return None
    postgres_url: str = request.getfixturevalue("postgres_url")
    return postgres_url


@pytest.fixture
def databases(url: str | None, tmp_path: Path) -> Iterator[list[Database]]:
    """Two handles on one database, as two server processes would have."""
    opened = [open_database(url, tmp_path), open_database(url, tmp_path)]
    yield opened
    for db in opened:
        db.close()


def an_upload(upload_id: str = "u1", chunk_count: int = 40) -> Upload:
    return Upload(
        id=upload_id, owner="o", name="big.bin", size=BIG, chunk_size=BIG // chunk_count + 1,
        chunk_count=chunk_count, protocol="dropzone", state="receiving",
        created=1795624285.123456, updated=1795624285.123456,
    )  # fmt: skip


def test_rows_keep_their_types(databases: list[Database]) -> None:
    db = databases[0]
    stored = db.run_sync(queries.insert_upload, an_upload())
    assert stored == an_upload()
    assert db.run_sync(queries.insert_upload, an_upload()) == stored  # idempotent
    record = StoredFile(
        id="f" * 24, owner="o", name="big.bin", path="big.bin", size=BIG, sha256="0" * 64,
        created=1795624285.5, upload_id="u1",
    )  # fmt: skip
    db.run_sync(queries.publish, record, "u1", 1795624290.0)
    assert databases[1].run_sync(queries.get_file, record.id) == record
    assert databases[1].run_sync(queries.get_upload, "u1").state == "done"  # type: ignore[union-attr]
    stats = db.run_sync(queries.storage_stats)
    assert (stats["files"], stats["bytes"]) == (1, BIG)


def rows(db: Database, sql: str) -> list[tuple[Any, ...]]:
    return db.run_sync(lambda connection: [tuple(row) for row in connection.execute(sql)])


def test_migrations_apply_once(url: str | None, tmp_path: Path) -> None:
    """Opened three times: every numbered script is recorded once, at the first open, and the
    rows written after each open survive the next (no script ran again over them)."""
    versions = [version for version, _ in migration_scripts()]
    recorded = []
    for opened in range(3):
        db = open_database(url, tmp_path)
        try:
            db.run_sync(queries.insert_upload, an_upload(f"u{opened}"))
            recorded.append(rows(db, "SELECT version, applied FROM schema_migrations ORDER BY 1"))
            ids = [row[0] for row in rows(db, "SELECT id FROM uploads ORDER BY id")]
        finally:
            db.close()
        assert ids == [f"u{n}" for n in range(opened + 1)]
    assert [version for version, _ in recorded[0]] == versions
    assert recorded[0] == recorded[1] == recorded[2]


def test_concurrent_chunks_from_two_processes_complete_exactly_once(
    databases: list[Database],
) -> None:
    """Every chunk recorded in parallel (and twice) from two handles: one recorder sees it full."""
    count = 40
    databases[0].run_sync(queries.insert_upload, an_upload(chunk_count=count))
    results: list[tuple[bool, int]] = []
    lock = threading.Lock()

    def record(index: int) -> None:
        result = databases[index % 2].run_sync(queries.record_chunk, "u1", index % count, 1.0)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(2 * count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(new for new, _ in results) == count
    assert max(received for _, received in results) == count
    assert databases[1].run_sync(queries.received_chunks, "u1") == list(range(count))


def test_one_finisher_wins_the_claim(databases: list[Database]) -> None:
    databases[0].run_sync(queries.insert_upload, an_upload(chunk_count=2))
    assert not databases[0].run_sync(queries.claim_finalize, "u1", 100.0, 60.0)  # incomplete
    for index in range(2):
        databases[0].run_sync(queries.record_chunk, "u1", index, 100.0)
    wins: list[bool] = []
    threads = [
        threading.Thread(
            target=lambda i=i: wins.append(
                databases[i % 2].run_sync(queries.claim_finalize, "u1", 100.0, 60.0)
            )
        )
        for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]
    # An expired lease may be taken over; a live one may not.
    assert not databases[1].run_sync(queries.claim_finalize, "u1", 150.0, 60.0)
    assert databases[1].run_sync(queries.claim_finalize, "u1", 161.0, 60.0)


def test_failed_transaction_rolls_back(databases: list[Database]) -> None:
    db = databases[0]
    db.run_sync(queries.insert_upload, an_upload())

    def half_then_fail(connection: queries.Connection) -> None:
        with queries.transaction(connection):
            connection.execute("DELETE FROM uploads WHERE id = ?", ("u1",))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        db.run_sync(half_then_fail)
    assert databases[1].run_sync(queries.get_upload, "u1") is not None
    assert db.run_sync(queries.get_upload, "u1") is not None


def test_an_ownerless_upload_is_claimed_once(databases: list[Database]) -> None:
    """A chunked upload begun without a cookie: the first cookie seen owns it, on both backends."""
    first, second = databases
    first.run_sync(queries.insert_upload, dataclasses.replace(an_upload("u9"), owner=""))
    first.run_sync(queries.claim_owner, "u9", "alice")
    second.run_sync(queries.claim_owner, "u9", "mallory")
    assert second.run_sync(queries.get_upload, "u9").owner == "alice"  # type: ignore[union-attr]


def test_one_writer_per_chunk_across_processes(databases: list[Database]) -> None:
    """The chunk lease of issue 12: one conditional statement, so of two handles (processes)
    only one becomes the writer; an expired lease is taken over; a counted chunk gets none."""
    first, second = databases
    first.run_sync(queries.insert_upload, an_upload())
    now = 1795624300.0
    assert first.run_sync(queries.claim_chunk_writer, "u1", 3, "a", now, 60.0)
    assert not second.run_sync(queries.claim_chunk_writer, "u1", 3, "b", now + 1, 60.0)
    assert second.run_sync(queries.chunk_writer_state, "u1", 3, now + 1) == (False, True)
    # The writer died: after its lease, a retry takes over; the dead writer can't count it.
    assert second.run_sync(queries.claim_chunk_writer, "u1", 3, "b", now + 61, 60.0)
    assert first.run_sync(queries.record_written_chunk, "u1", 3, "a", now + 62) is None
    assert second.run_sync(queries.record_written_chunk, "u1", 3, "b", now + 62) == (True, 1)
    assert not first.run_sync(queries.claim_chunk_writer, "u1", 3, "c", now + 500, 60.0)
    assert first.run_sync(queries.chunk_writer_state, "u1", 3, now + 500) == (True, False)
    assert first.run_sync(queries.release_all_chunk_writers) == 0
    # One statement renews every lease of one process, and only that process's.
    assert first.run_sync(queries.claim_chunk_writer, "u1", 4, "p1:x", now, 15.0)
    assert first.run_sync(queries.claim_chunk_writer, "u1", 5, "p2:y", now, 15.0)
    assert second.run_sync(queries.renew_chunk_writers, "p1", now + 10, 15.0) == 1
    assert not second.run_sync(queries.claim_chunk_writer, "u1", 4, "p3:z", now + 20, 15.0)
    assert second.run_sync(queries.claim_chunk_writer, "u1", 5, "p3:z", now + 20, 15.0)


class LockedAtFirst:
    """A connection whose WAL switch finds the file locked `times` times (another process
    starting at the same moment), as one of two `--workers` once did at start-up."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.times = times
        self.message = message
        self.tries = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode = WAL"
        self.tries += 1
        if self.tries <= self.times:
            raise sqlite3.OperationalError(self.message)


def test_a_locked_wal_switch_at_start_up_is_tried_again() -> None:
    from pyfiledrop.meta.sqlite import use_wal

    connection = LockedAtFirst(3)
    use_wal(connection)
    assert connection.tries == 4
    # Past the budget, or another error: said at once.
    clock = iter([0.0, 10.0, 1000.0])
    with pytest.raises(sqlite3.OperationalError):
        use_wal(LockedAtFirst(99), clock=lambda: next(clock))
    damaged = LockedAtFirst(1, "file is not a database")
    with pytest.raises(sqlite3.OperationalError):
        use_wal(damaged)
    assert damaged.tries == 1


def test_a_chunk_starts_in_one_trip_only_on_the_plain_path(databases: list[Database]) -> None:
    """`start_chunk` claims the writer only for an active upload of the same shape whose chunk
    is free; anything else comes back unclaimed for the core to sort out (admission, conflict,
    readmission, duplicate), with the same one-writer guarantee as `claim_chunk_writer`."""
    first, second = databases
    upload = dataclasses.replace(an_upload(), owner="")
    shape = (upload.size, upload.chunk_size, upload.chunk_count)
    now = upload.updated + 1
    start = queries.start_chunk
    assert first.run_sync(start, "u1", 0, shape, "alice", "w", now, 60.0, 0.0) == (
        None,
        False,
        False,
    )
    first.run_sync(queries.insert_upload, upload)
    other_shape = (upload.size, upload.chunk_size + 1, upload.chunk_count)
    found, counted, claimed = first.run_sync(
        start, "u1", 0, other_shape, "alice", "w", now, 60.0, 0.0
    )
    assert found is not None and found.owner == "" and (counted, claimed) == (False, False)
    idle, _, claimed = first.run_sync(start, "u1", 0, shape, "alice", "w", now, 60.0, now)
    assert idle is not None and idle.owner == "alice" and not claimed  # owner claimed, idle
    assert first.run_sync(start, "u1", 0, shape, "bob", "a", now, 60.0, 0.0)[1:] == (False, True)
    assert second.run_sync(start, "u1", 0, shape, "bob", "b", now, 60.0, 0.0)[1:] == (False, False)
    assert first.run_sync(queries.get_upload, "u1").owner == "alice"  # type: ignore[union-attr]
    assert first.run_sync(queries.record_written_chunk, "u1", 0, "a", now + 1) == (True, 1)
    counted_row = second.run_sync(start, "u1", 0, shape, "bob", "b", now + 2, 60.0, 0.0)
    assert counted_row[1:] == (True, False)
    assert second.run_sync(queries.chunk_status, "u1", 0)[1] is True
    assert second.run_sync(queries.chunk_status, "u1", 1)[1] is False
