"""The books of shares (several files behind one link) and of download passwords.

Plain SQL like `queries`, for both backends; each function one short transaction on the
database thread.
"""

from __future__ import annotations

from pyfiledrop.meta import Share as Share  # the row type, still importable from here
from pyfiledrop.meta.queries import Connection, transaction


def insert_share(connection: Connection, share: Share, file_ids: list[str]) -> None:
    with transaction(connection):
        connection.execute(
            "INSERT INTO shares (id, owner, created, expires, downloads, max_downloads)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                share.id, share.owner, share.created, share.expires, share.downloads,
                share.max_downloads,
            ),
        )  # fmt: skip
        for position, file_id in enumerate(file_ids):
            connection.execute(
                "INSERT INTO share_files (share_id, file_id, position) VALUES (?, ?, ?)",
                (share.id, file_id, position),
            )


def get_share(connection: Connection, share_id: str) -> Share | None:
    row = connection.execute(
        "SELECT id, owner, created, expires, downloads, max_downloads FROM shares WHERE id = ?",
        (share_id,),
    ).fetchone()
    return Share(*row) if row else None


def share_file_ids(connection: Connection, share_id: str) -> list[str]:
    rows = connection.execute(
        "SELECT file_id FROM share_files WHERE share_id = ? ORDER BY position", (share_id,)
    ).fetchall()
    return [str(row[0]) for row in rows]


def take_share_download(connection: Connection, share_id: str) -> bool:
    """Count one download of the share, unless its limit is reached (then False)."""
    cursor = connection.execute(
        "UPDATE shares SET downloads = downloads + 1"
        " WHERE id = ? AND (max_downloads IS NULL OR downloads < max_downloads)",
        (share_id,),
    )
    return bool(cursor.rowcount == 1)


def set_password(connection: Connection, targets: list[str], secret: str) -> None:
    """Protect files or shares (by public id) with one password hash; replaces an earlier one."""
    with transaction(connection):
        for target in targets:
            connection.execute(
                "INSERT INTO download_passwords (target, secret) VALUES (?, ?)"
                " ON CONFLICT (target) DO UPDATE SET secret = excluded.secret",
                (target, secret),
            )


def password_of(connection: Connection, target: str) -> str | None:
    row = connection.execute(
        "SELECT secret FROM download_passwords WHERE target = ?", (target,)
    ).fetchone()
    return str(row[0]) if row else None
