"""The tus write lock and offset on SQLite and PostgreSQL: one writer, a lease, offsets in order."""

from __future__ import annotations

import threading

from pyfiledrop.meta import Database, Upload, queries, tus_queries
from tests.meta.test_backends import databases, url  # noqa: F401  (the two-backend fixtures)


def a_tus_upload() -> Upload:
    return Upload(
        id="t1", owner="o", name="t.bin", size=1000, chunk_size=1000, chunk_count=1,
        protocol="tus", state="receiving", created=100.0, updated=100.0, metadata="filename dA==",
        content_type="text/plain", concat=None,
    )  # fmt: skip


def test_one_writer_at_a_time_with_a_lease(databases: list[Database]) -> None:  # noqa: F811
    stored = databases[0].run_sync(queries.insert_upload, a_tus_upload())
    assert (stored.byte_offset, stored.metadata, stored.content_type) == (
        0,
        "filename dA==",
        "text/plain",
    )
    wins: list[str] = []

    def take(holder: str) -> None:
        if databases[int(holder) % 2].run_sync(tus_queries.take_lock, "t1", holder, 0, 200.0, 30.0):
            wins.append(holder)

    threads = [threading.Thread(target=take, args=(str(i),)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    winner = wins[0]
    db = databases[1]
    assert not db.run_sync(tus_queries.take_lock, "t1", "late", 0, 229.0, 30.0)  # the lease holds
    db.run_sync(tus_queries.release_lock, "t1", "late")  # not the holder: no effect
    assert not db.run_sync(tus_queries.take_lock, "t1", "late", 0, 229.0, 30.0)
    assert not db.run_sync(tus_queries.advance_offset, "t1", "late", 0, 500, 229.0)
    assert not db.run_sync(tus_queries.advance_offset, "t1", winner, 7, 500, 229.0)  # wrong start
    assert db.run_sync(tus_queries.advance_offset, "t1", winner, 0, 500, 229.0)
    db.run_sync(tus_queries.renew_lock, "t1", winner, 300.0, 250.0)
    assert not db.run_sync(tus_queries.take_lock, "t1", "late", 500, 280.0, 30.0)
    assert db.run_sync(tus_queries.take_lock, "t1", "late", 500, 301.0, 30.0)  # the holder died
    assert not db.run_sync(tus_queries.advance_offset, "t1", winner, 500, 1000, 302.0)
    db.run_sync(tus_queries.release_lock, "t1", "late")
    assert not db.run_sync(tus_queries.take_lock, "t1", "x", 0, 303.0, 30.0)  # the offset moved on
    assert db.run_sync(tus_queries.take_lock, "t1", "x", 500, 303.0, 30.0)
    upload = db.run_sync(queries.get_upload, "t1")
    assert upload is not None
    assert (upload.byte_offset, upload.lock_owner) == (500, "x")


def test_a_deferred_length_is_set_once(databases: list[Database]) -> None:  # noqa: F811
    upload = a_tus_upload()
    databases[0].run_sync(queries.insert_upload, Upload(**{**upload.__dict__, "size": None}))
    assert databases[0].run_sync(tus_queries.set_length, "t1", 5 * 1024**4)
    assert not databases[1].run_sync(tus_queries.set_length, "t1", 7)
    stored = databases[1].run_sync(queries.get_upload, "t1")
    assert stored is not None and stored.size == stored.chunk_size == 5 * 1024**4


def test_a_lock_is_asked_for_renewed_while_saving_and_freed_at_start(
    databases: list[Database],  # noqa: F811
) -> None:
    databases[0].run_sync(queries.insert_upload, a_tus_upload())
    first, second = databases
    assert first.run_sync(tus_queries.take_lock, "t1", "holder", 0, 200.0, 5.0)
    assert first.run_sync(tus_queries.renew_lock, "t1", "holder", 210.0, 205.0)  # nobody asked
    second.run_sync(tus_queries.want_lock, "t1", 206.0)
    # Asked: the lease still runs on while the holder saves, but it is told to stop.
    assert not first.run_sync(tus_queries.renew_lock, "t1", "holder", 212.0, 207.0)
    upload = second.run_sync(queries.get_upload, "t1")
    assert upload is not None
    assert (upload.lock_owner, upload.lock_until, upload.lock_wanted) == ("holder", 212.0, 206.0)
    assert not second.run_sync(tus_queries.renew_lock, "t1", "other", 300.0, 207.0)  # not its lock
    first.run_sync(tus_queries.release_lock, "t1", "holder")
    assert second.run_sync(tus_queries.take_lock, "t1", "newcomer", 0, 208.0, 5.0)
    fresh = second.run_sync(queries.get_upload, "t1")
    assert fresh is not None and fresh.lock_wanted is None  # a new holder starts unasked
    assert second.run_sync(tus_queries.renew_lock, "t1", "newcomer", 215.0, 209.0)
    assert first.run_sync(tus_queries.release_all_locks) == 1  # the only process, starting
    assert first.run_sync(tus_queries.take_lock, "t1", "restarted", 0, 209.5, 5.0)
    second.run_sync(tus_queries.want_lock, "t1", 210.0)
    second.run_sync(tus_queries.release_lock, "t1", "restarted")
    second.run_sync(tus_queries.want_lock, "t1", 211.0)  # nobody holds it: nothing to ask
    released = second.run_sync(queries.get_upload, "t1")
    assert released is not None
    assert (released.lock_owner, released.lock_wanted) == (None, None)
