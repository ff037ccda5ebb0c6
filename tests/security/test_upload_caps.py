"""Uploads in progress are capped per owner and per client address: past the cap 429 with
`Retry-After` (before: 200 unfinished uploads from one owner were all accepted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import ServerFactory
from tests.harness import app_client

TUS = {"Tus-Resumable": "1.0.0"}


def begin(client: Any, size: int = 10) -> Any:
    """A tus upload created and left unfinished (TestClient or httpx.Client)."""
    return client.post("/files/", headers={**TUS, "Upload-Length": str(size)})


def test_the_default_owner_cap_holds(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        statuses = [begin(client).status_code for _ in range(101)]
        assert statuses[:100] == [201] * 100
        refused = begin(client)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) > 0


def test_caps_per_owner_and_per_address(server_factory: ServerFactory) -> None:
    server = server_factory("--uploads-per-owner", "3", "--uploads-per-address", "5")
    with httpx.Client(base_url=server.url, timeout=10) as owner:
        urls = [begin(owner).headers["location"] for _ in range(3)]
        refused = begin(owner)
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"].isdigit()
        assert "3" in refused.json()["error"]
        # Finishing one makes room again.
        done = owner.patch(
            urls[0],
            content=b"0123456789",
            headers={
                **TUS,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert done.status_code == 204, done.text
        assert begin(owner).status_code == 201
    # New owners (no cookie kept) from the same address: the address cap holds.
    statuses = []
    for _ in range(4):
        with httpx.Client(base_url=server.url, timeout=10) as stranger:
            statuses.append(begin(stranger).status_code)
    assert statuses == [201, 201, 429, 429]
    put = httpx.put(f"{server.url}/put/x.bin", content=b"x", timeout=10)
    assert put.status_code == 429
