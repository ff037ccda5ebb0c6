"""Property tests (hypothesis) over Dropzone's protocol and its validation, in-process.

Random, contradictory and extreme dz* values, part orders and duplicates never give a 500, a
crash, a wrong file, or a file outside the storage folder; any order of chunks, with duplicates
and refused junk in between, ends in the exact file."""

from __future__ import annotations

import contextlib
import hashlib
import math
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pyfiledrop.names import sanitize
from tests.dz import DZ_FIELD_NAMES, chunk_fields
from tests.harness import app_client
from tests.rawhttp import multipart

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same cases on every run: a failure here is reproducible
)
MULTIPART = {"Content-Type": "multipart/form-data; boundary=rawb0undary"}

EXTREME_NUMBERS = st.sampled_from(
    ["0", "1", "-1", "-0", "00", "+1", " 7 ", "1e3", "0x10", "1.5", "NaN", "١٢", "²", "",
     "9" * 19, "9" * 40, str(2**63), str(2**64 + 1), "4294967297"]
)  # fmt: skip
NUMBER = st.one_of(st.integers(-(2**70), 2**70).map(str), EXTREME_NUMBERS, st.text(max_size=12))
UUID_TEXT = st.one_of(
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex.upper()),
    st.sampled_from(["../x", "..%2f", "/etc/passwd", "", " ", "\x00", "a" * 100]),
    st.text(max_size=40),
)


def post(client: TestClient, fields: list[tuple[str, str]], name: str, data: bytes | None) -> Any:
    body = multipart(fields, name, data)
    return client.post("/upload", content=body, headers=MULTIPART)


def assert_contained(root: Path) -> None:
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        assert relative.parts[0] in ("storage", "chunks", "data"), path
        if len(relative.parts) == 1:
            continue
        if relative.parts[0] == "storage":
            assert len(relative.parts) == 2 and path.is_file(), path
        if relative.parts[0] == "chunks":
            assert len(relative.parts) == 2 and path.suffix == ".part", path


def test_random_fields_never_break_anything(tmp_path: Path) -> None:
    root = tmp_path / "app"
    with app_client(root, min_free=0) as client:
        client.get("/healthz")

        @PROPERTY_SETTINGS
        @given(
            values=st.fixed_dictionaries({name: NUMBER for name in DZ_FIELD_NAMES[1:]}),
            upload_id=UUID_TEXT,
            present=st.lists(st.sampled_from(DZ_FIELD_NAMES), unique=True),
            duplicates=st.lists(st.sampled_from(DZ_FIELD_NAMES), max_size=3),
            order_seed=st.randoms(use_true_random=False),
            after_file=st.booleans(),
            name=st.text(max_size=60).map(lambda n: n.replace('"', "")),
            data=st.binary(max_size=300),
        )
        def check(
            values: dict[str, str],
            upload_id: str,
            present: list[str],
            duplicates: list[str],
            order_seed: Any,
            after_file: bool,
            name: str,
            data: bytes,
        ) -> None:
            all_values = {"dzuuid": upload_id, **values}
            fields = [(key, all_values[key]) for key in present + duplicates]
            order_seed.shuffle(fields)
            body_fields, trailing = (fields, []) if not after_file else (fields[:1], fields[1:])
            body = multipart(body_fields, name, data)
            if trailing:
                closing = b"--rawb0undary--\r\n"
                body = body[: -len(closing)] + multipart(trailing, None, None)
            response = client.post("/upload", content=body, headers=MULTIPART)
            assert response.status_code < 500, response.text
            assert response.headers["content-type"] == "application/json"
            if response.status_code >= 400:
                assert response.json()["error"]
            elif response.json()["status"] == "done":
                record = response.json()["file"]
                stored = stored_path(root, record)
                assert sanitize(record["name"]) == record["name"]
                assert hashlib.sha256(stored.read_bytes()).hexdigest() == record["sha256"]

        check()
    assert_contained(root)


@st.composite
def upload_plans(draw: st.DrawFn) -> tuple[bytes, int, list[tuple[str, int]]]:
    """A file, a chunk size, and a sequence of sends: every chunk at least once, some twice,
    with junk (wrong length, wrong offset, conflicting sizes) mixed in."""
    data = draw(st.binary(min_size=0, max_size=3000))
    chunk_size = draw(st.integers(1, 1200))
    count = max(1, math.ceil(len(data) / chunk_size))
    order = draw(st.permutations(range(count)))
    extra = draw(st.lists(st.integers(0, count - 1), max_size=count))
    junk = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["short", "long", "offset", "size", "count"]),
                st.integers(0, count - 1),
            ),
            max_size=4,
        )
    )
    sends = [("ok", index) for index in order[1:]] + [("ok", index) for index in extra] + junk
    positions = draw(st.permutations(range(len(sends))))
    # The first chunk defines the upload (API.md: later chunks must agree with it), so a valid
    # one comes first; everything after is in any order.
    return data, chunk_size, [("ok", order[0])] + [sends[p] for p in positions]


def chunk_request(
    upload_id: str, data: bytes, chunk_size: int, kind: str, index: int
) -> tuple[list[tuple[str, str]], bytes]:
    fields = chunk_fields(upload_id, index, chunk_size, len(data))
    piece = data[index * chunk_size : (index + 1) * chunk_size]
    if kind == "short":
        piece = piece[:-1] if piece else b"x"
    elif kind == "long":
        piece = piece + b"!"
    elif kind == "offset":
        fields["dzchunkbyteoffset"] = str(index * chunk_size + 1)
    elif kind == "size":
        fields["dztotalfilesize"] = str(len(data) + 1)
    elif kind == "count":
        fields["dztotalchunkcount"] = str(int(fields["dztotalchunkcount"]) + 1)
    return list(fields.items()), piece


def test_any_order_with_duplicates_and_junk_gives_the_exact_file(tmp_path: Path) -> None:
    root = tmp_path / "app"
    with app_client(root, min_free=0) as client:
        client.get("/healthz")

        # CR/LF would break the multipart head the test client writes (not the server's concern).
        names = st.text(st.characters(exclude_characters='\r\n"'), min_size=1, max_size=40)

        @PROPERTY_SETTINGS
        @given(plan=upload_plans(), name=names)
        def check(plan: tuple[bytes, int, list[tuple[str, int]]], name: str) -> None:
            data, chunk_size, sends = plan
            upload_id = str(uuid.uuid4())
            done: list[dict[str, Any]] = []
            for kind, index in sends:
                fields, piece = chunk_request(upload_id, data, chunk_size, kind, index)
                response = post(client, fields, name.replace('"', ""), piece)
                assert response.status_code < 500, response.text
                if kind == "ok":
                    assert response.status_code == 200, (kind, index, response.text)
                    if response.json()["status"] == "done":
                        done.append(response.json()["file"])
                else:
                    assert response.status_code in (200, 400, 409, 413), (kind, response.text)
                    if kind in ("short", "long"):
                        assert response.status_code in (400, 413) or _answered_duplicate(response)
            finish = client.post(f"/upload/{upload_id}/finish")
            assert finish.status_code == 200, finish.text
            record = finish.json()["file"]
            assert [d["id"] for d in done] == [record["id"]]  # published exactly once
            stored = stored_path(root, record)
            assert stored.read_bytes() == data
            assert record["sha256"] == hashlib.sha256(data).hexdigest()
            assert record["name"] == sanitize(name.replace('"', ""))  # as sent, not as stored
            assert sanitize(name.replace('"', "")).split(".")[0][:10] in stored.name

        check()
    assert_contained(root)


def stored_path(root: Path, record: dict[str, Any]) -> Path:
    """The file on disk: its name there may differ from the name the uploader sees."""
    with contextlib.closing(sqlite3.connect(root / "data" / "pyfiledrop.sqlite3")) as db:
        (path,) = db.execute("SELECT path FROM files WHERE id = ?", (record["id"],)).fetchone()
    return root / "storage" / str(path)


def _answered_duplicate(response: Any) -> bool:
    """A chunk the server already has is read and discarded whatever it holds (API.md)."""
    return bool(response.status_code == 200 and response.json()["status"] == "duplicate")


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.text())
def test_sanitized_names_are_one_safe_component(name: str) -> None:
    safe = sanitize(name)
    assert safe and safe not in (".", "..") and not safe.startswith(".")
    assert not set(safe) & set('/\\\x00<>:"|?*')
    assert all(ord(ch) >= 32 and ord(ch) != 127 for ch in safe)
    assert len(safe.encode()) <= 200
    assert sanitize(safe) == safe  # stable: a stored name never changes when seen again
