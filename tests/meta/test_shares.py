"""The shares' and download passwords' statements on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyfiledrop.meta import Database, open_database
from pyfiledrop.meta import shares as books


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    url = None if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened = open_database(url, tmp_path)
    yield opened
    opened.close()


def test_share_rows_keep_their_order_and_types(db: Database) -> None:
    share = books.Share(id="s" * 22, owner="o", created=1795624285.25, expires=1795710685.5,
                        max_downloads=3)  # fmt: skip
    db.run_sync(books.insert_share, share, ["c" * 22, "a" * 22, "b" * 22])
    assert db.run_sync(books.get_share, share.id) == share
    assert db.run_sync(books.share_file_ids, share.id) == ["c" * 22, "a" * 22, "b" * 22]
    assert db.run_sync(books.get_share, "nope") is None


def test_share_download_limit_holds_under_concurrency(db: Database) -> None:
    share = books.Share(id="t" * 22, owner="o", created=1.0, max_downloads=5)
    db.run_sync(books.insert_share, share, ["f" * 22])
    taken: list[bool] = []
    lock = threading.Lock()

    def take() -> None:
        result = db.run_sync(books.take_share_download, share.id)
        with lock:
            taken.append(result)

    threads = [threading.Thread(target=take) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert taken.count(True) == 5
    assert db.run_sync(books.get_share, share.id).downloads == 5  # type: ignore[union-attr]


def test_password_is_set_and_replaced(db: Database) -> None:
    db.run_sync(books.set_password, ["x" * 22, "y" * 22], "scrypt$00$11")
    db.run_sync(books.set_password, ["x" * 22], "scrypt$22$33")
    assert db.run_sync(books.password_of, "x" * 22) == "scrypt$22$33"
    assert db.run_sync(books.password_of, "y" * 22) == "scrypt$00$11"
    assert db.run_sync(books.password_of, "z" * 22) is None
