"""The upload core in-process, with a controllable clock: janitor and finalize leases."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pyfiledrop.meta import queries
from pyfiledrop.uploads import FINALIZE_LEASE_SECONDS, Uploads
from tests.dz import chunk_fields
from tests.harness import FakeClock, running_app

MiB = 1024 * 1024


@pytest.fixture
def core(tmp_path: Path) -> Iterator[tuple[TestClient, Uploads, FakeClock]]:
    with running_app(tmp_path, abandon_after=3600) as app:
        yield app.client, app.uploads, app.clock


def send(client: TestClient, upload_id: str, index: int, data: bytes, total: int) -> int:
    response = client.post(
        "/upload",
        data=chunk_fields(upload_id, index, MiB, total),
        files={"file": ("x.bin", data)},
    )
    return response.status_code


def test_janitor_removes_idle_partial_uploads(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, clock = core
    idle, busy = str(uuid.uuid4()), str(uuid.uuid4())
    assert send(client, idle, 0, b"a" * MiB, 2 * MiB) == 200
    clock.now += 1800
    assert send(client, busy, 0, b"b" * MiB, 2 * MiB) == 200
    clock.now += 1801  # idle: 3601 s since its last chunk; busy: 1801 s
    orphan = uploads.storage.partials / f"{uuid.uuid4()}.part"
    orphan.write_bytes(b"left by a crash before its row was written")
    os.utime(orphan, (clock.now - 7200, clock.now - 7200))

    removed = client.portal.call(uploads.remove_abandoned)  # type: ignore[union-attr]

    assert removed == 2
    assert not uploads.storage.partial_path(idle).exists()
    assert not orphan.exists()
    assert uploads.storage.partial_path(busy).exists()
    assert client.get(f"/upload/{idle}").status_code == 404
    assert client.get(f"/upload/{busy}").json()["received"] == [0]


def test_a_finisher_that_died_is_replaced_after_its_lease(
    core: tuple[TestClient, Uploads, FakeClock],
) -> None:
    client, uploads, clock = core
    upload_id = str(uuid.uuid4())
    first, second = os.urandom(MiB), os.urandom(MiB // 2)
    assert send(client, upload_id, 0, first, MiB + MiB // 2) == 200
    # The last chunk was counted by another process, which then claimed the finish and died.
    with uploads.storage.partial_path(upload_id).open("r+b") as partial:
        partial.seek(MiB)
        partial.write(second)
    uploads.db.run_sync(queries.record_chunk, upload_id, 1, clock.now)
    assert uploads.db.run_sync(queries.claim_finalize, upload_id, clock.now, 60.0)
    assert client.get(f"/upload/{upload_id}").json()["state"] == "finalizing"

    clock.now += FINALIZE_LEASE_SECONDS + 1
    finish = client.post(f"/upload/{upload_id}/finish")

    assert finish.status_code == 200
    assert finish.json()["file"]["sha256"] == hashlib.sha256(first + second).hexdigest()
    assert client.get(f"/upload/{upload_id}").json()["state"] == "done"


def test_a_claim_needs_every_chunk(core: tuple[TestClient, Uploads, FakeClock]) -> None:
    client, uploads, clock = core
    upload_id = str(uuid.uuid4())
    assert send(client, upload_id, 0, b"a" * MiB, 2 * MiB) == 200
    assert not uploads.db.run_sync(queries.claim_finalize, upload_id, clock.now, 60.0)
    finish = client.post(f"/upload/{upload_id}/finish")
    assert finish.status_code == 409
    assert finish.json()["missing"] == [1]


def test_public_ids_never_start_with_a_dash() -> None:
    """`pyfiledrop files rm -Yfw...` read the id as an option (1 id in 64 began with "-")."""
    from pyfiledrop.uploads import new_public_id, public_token

    ids = [new_public_id() for _ in range(3000)] + [public_token(16) for _ in range(3000)]
    assert not [token for token in ids if token.startswith("-")]
    assert all(len(token) == 24 for token in ids[:3000])
