"""The books of S3 multipart uploads: which multipart upload backs an upload, and its parts.

Plain SQL like `queries`, for both backends, behind the port the S3 storage owns
(`storage.s3.MultipartBooks`, implemented with these by `s3_books.DatabaseParts`). A part is
recorded once S3 has acknowledged it and its checksum matched, before its chunk counts; a re-sent
part replaces itself (as in S3).
"""

from __future__ import annotations

from pyfiledrop.meta.queries import Connection, transaction


def recorded_multipart(connection: Connection, upload_id: str) -> tuple[str, str] | None:
    row = connection.execute(
        "SELECT s3_upload_id, object_key FROM s3_multipart WHERE upload_id = ?", (upload_id,)
    ).fetchone()
    return (str(row[0]), str(row[1])) if row else None


def add_multipart(
    connection: Connection, upload_id: str, s3_upload_id: str, object_key: str, now: float
) -> str:
    """Record a new multipart upload unless another process did first; returns the winner's id."""
    connection.execute(
        "INSERT INTO s3_multipart (upload_id, s3_upload_id, object_key, created)"
        " VALUES (?, ?, ?, ?) ON CONFLICT (upload_id) DO NOTHING",
        (upload_id, s3_upload_id, object_key, now),
    )
    row = connection.execute(
        "SELECT s3_upload_id FROM s3_multipart WHERE upload_id = ?", (upload_id,)
    ).fetchone()
    return str(row[0])


def record_part(
    connection: Connection, upload_id: str, part_number: int, etag: str, size: int
) -> None:
    """Record (or replace) a part, unless its multipart upload is already completed and gone."""
    connection.execute(
        "INSERT INTO s3_parts (upload_id, part_number, etag, size)"
        " SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM s3_multipart WHERE upload_id = ?)"
        " ON CONFLICT (upload_id, part_number) DO UPDATE SET etag = excluded.etag,"
        " size = excluded.size",
        (upload_id, part_number, etag, size, upload_id),
    )


def parts_of(connection: Connection, upload_id: str) -> list[tuple[int, str, int]]:
    rows = connection.execute(
        "SELECT part_number, etag, size FROM s3_parts WHERE upload_id = ? ORDER BY part_number",
        (upload_id,),
    ).fetchall()
    return [(int(row[0]), str(row[1]), int(row[2])) for row in rows]


def forget_multipart(connection: Connection, upload_id: str) -> None:
    with transaction(connection):
        connection.execute("DELETE FROM s3_parts WHERE upload_id = ?", (upload_id,))
        connection.execute("DELETE FROM s3_multipart WHERE upload_id = ?", (upload_id,))


def is_finishing(connection: Connection, upload_id: str) -> bool:
    row = connection.execute("SELECT state FROM uploads WHERE id = ?", (upload_id,)).fetchone()
    return row is not None and row[0] in ("finalizing", "done")
