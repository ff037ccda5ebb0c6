"""Space is held only while an upload is alive, and every way bytes enter is admitted in one place
(issue 12: findings 2 and 4, must-dos 2 and 5), with a fake clock and a fake free space."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pyfiledrop.config import RESERVE_IDLE_SECONDS
from pyfiledrop.errors import NoSpace, TooLarge
from pyfiledrop.meta import Upload, queries
from tests.dz import chunk_fields
from tests.harness import App, running_app

MiB = 1024 * 1024


def first_chunk(client: object, upload_id: str, total: int) -> int:
    response = client.post(  # type: ignore[attr-defined]
        "/upload",
        data=chunk_fields(upload_id, 0, MiB, total),
        files={"file": ("big.bin", os.urandom(MiB))},
    )
    return int(response.status_code)


def chunk(client: object, upload_id: str, index: int, total: int) -> int:
    response = client.post(  # type: ignore[attr-defined]
        "/upload",
        data=chunk_fields(upload_id, index, MiB, total),
        files={"file": ("big.bin", os.urandom(MiB))},
    )
    return int(response.status_code)


def test_an_idle_first_chunk_stops_holding_space(tmp_path: os.PathLike[str]) -> None:
    """Finding 4: one first chunk of a 50 MiB upload, then silence. While it is active it holds
    its unwritten 49 MiB; once idle past `reserve_idle` another user's upload is admitted; when
    the idle one resumes it is admitted again (refused while the other holds the space, accepted
    once that one is idle too)."""
    partials = Path(tmp_path) / "chunks"

    def free_bytes() -> int:
        """A 100 MiB filesystem: what the partials hold blocks for is taken, as statvfs says."""
        allocated = sum(path.stat().st_blocks * 512 for path in partials.glob("*.part"))
        return 100 * MiB - allocated

    with running_app(
        tmp_path,  # type: ignore[arg-type]
        free_bytes=free_bytes,
        min_free=40 * MiB,
        reserve_idle=RESERVE_IDLE_SECONDS,
    ) as app:
        hog, other_upload = str(uuid.uuid4()), str(uuid.uuid4())
        app.client.get("/healthz")
        assert first_chunk(app.client, hog, 50 * MiB) == 200
        other = app.other_client()
        other.get("/healthz")
        assert first_chunk(other, other_upload, 30 * MiB) == 507  # 100 - 49 - 30 < 40

        app.clock.advance(RESERVE_IDLE_SECONDS + 1)
        assert first_chunk(other, other_upload, 30 * MiB) == 200  # the idle one holds nothing

        refused = app.client.post(
            "/upload",
            data=chunk_fields(hog, 1, MiB, 50 * MiB),
            files={"file": ("big.bin", os.urandom(MiB))},
        )
        assert refused.status_code == 507, refused.text  # admitted again: no room now
        assert app.client.get(f"/upload/{hog}").json()["received"] == [0]  # kept, resumable

        app.clock.advance(RESERVE_IDLE_SECONDS + 1)  # the other one idles in turn
        assert chunk(app.client, hog, 1, 50 * MiB) == 200
        assert app.client.get(f"/upload/{hog}").json()["received"] == [0, 1]
        assert chunk(other, other_upload, 1, 30 * MiB) == 507  # and is admitted again


def test_an_idle_upload_counts_only_its_written_bytes_in_quotas(
    tmp_path: os.PathLike[str],
) -> None:
    with running_app(tmp_path, owner_quota=10 * MiB) as app:  # type: ignore[arg-type]
        app.client.get("/healthz")
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        assert first_chunk(app.client, first, 8 * MiB) == 200
        assert first_chunk(app.client, second, 4 * MiB) == 507  # 8 + 4 > 10
        app.clock.advance(RESERVE_IDLE_SECONDS + 1)
        assert first_chunk(app.client, second, 4 * MiB) == 200  # 1 written + 4 <= 10
        assert chunk(app.client, first, 1, 8 * MiB) == 507  # resuming asks for its 8 again


def upload_row(app: App, upload_id: str) -> Upload:
    row = app.uploads.db.run_sync(queries.get_upload, upload_id)
    assert row is not None
    return row


def test_admit_is_the_one_admission_for_a_length_known_late(
    tmp_path: os.PathLike[str],
) -> None:
    """What the tus half calls when a deferred length becomes known: the upload's own row is
    left out and its whole size asked for, against --max-size, quotas and --min-free."""
    free = 100 * MiB
    with running_app(
        tmp_path,  # type: ignore[arg-type]
        free_bytes=lambda: free,
        min_free=10 * MiB,
        owner_quota=10 * MiB,
        max_size=64,
    ) as app:
        app.client.get("/healthz")
        upload_id = str(uuid.uuid4())
        assert first_chunk(app.client, upload_id, 2 * MiB) == 200
        row = upload_row(app, upload_id)

        def admit(size: int) -> None:
            app.run(app.uploads.admit, row.owner, size, upload_id)

        admit(10 * MiB)  # its own 2 MiB are not counted twice
        with pytest.raises(NoSpace) as over_quota:
            admit(48 * MiB)
        assert over_quota.value.code == "over_quota"
        with pytest.raises(TooLarge):
            admit(65 * MiB)
        free = 14 * MiB  # 6 MiB asked, 1 MiB of it written: 14 - 5 < 10 kept free
        with pytest.raises(NoSpace) as no_room:
            admit(6 * MiB)
        assert no_room.value.code == "insufficient_storage"


def test_stream_guard_stops_a_growing_stream_at_the_owner_quota(
    tmp_path: os.PathLike[str],
) -> None:
    with running_app(tmp_path, owner_quota=10 * MiB) as app:  # type: ignore[arg-type]
        app.client.get("/healthz")
        upload_id = str(uuid.uuid4())
        assert first_chunk(app.client, upload_id, 4 * MiB) == 200
        owner = upload_row(app, upload_id).owner
        check = app.uploads.stream_guard(owner, "another-upload")
        assert check is not None
        app.run(check, 6 * MiB)  # 4 MiB of the chunked upload + 6 fit in 10
        with pytest.raises(NoSpace):
            app.run(check, 6 * MiB + 1)
