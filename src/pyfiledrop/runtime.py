"""The composition root: settings -> database -> storage -> the core, built in one place.

The web app (`web/app.py`), the operator's commands (`admin.py`) and the other commands of
`cli.py` all open the server's state here, so they agree on which database and which storage a
set of settings names, and on the order things are closed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyfiledrop.config import ConfigError, S3Location, Settings
from pyfiledrop.meta import Database, open_database
from pyfiledrop.storage import Storage
from pyfiledrop.storage.local import LocalStorage
from pyfiledrop.uploads import Uploads


def database(settings: Settings) -> Database:
    """The metadata books: SQLite in the data folder, or the `database` URL (PostgreSQL)."""
    settings.data.mkdir(parents=True, exist_ok=True)
    return open_database(settings.database, settings.data)


def storage(settings: Settings, db: Database) -> Storage:
    """Local disk, or an object store (whose multipart uploads are kept in the books)."""
    if isinstance(settings.storage, S3Location):
        from pyfiledrop.meta.s3_books import DatabaseParts
        from pyfiledrop.storage.s3 import S3Storage

        return S3Storage(settings, DatabaseParts(db))
    return LocalStorage(settings.storage, settings.chunks, writeback=settings.fsync)


def open_core(settings: Settings) -> Uploads:
    """Everything a server process (or a command that removes files) works with."""
    db = database(settings)
    return Uploads(settings, db, storage(settings, db))


def close_core(core: Uploads) -> None:
    """The storage first: it may still write its last records to the books."""
    core.storage.close()
    core.db.close()


def require_existing_data(settings: Settings) -> None:
    """For the commands that read a server's data: refuse to create an empty database."""
    if settings.database is None and not settings.db_path.exists():
        raise ConfigError(f"--data {settings.data}: no pyfiledrop database there")


@contextmanager
def opened_database(settings: Settings) -> Iterator[Database]:
    """The books alone, for commands that only read them (no storage is touched)."""
    db = open_database(settings.database, settings.data)
    try:
        yield db
    finally:
        db.close()
