"""Path traversal: hostile names in every field, file name and URL; nothing lands outside the
storage folder, and every stored name is one safe path component."""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.conftest import Server
from tests.dz import chunk_fields
from tests.rawhttp import exchange, head, multipart

HOSTILE_NAMES = [
    "../escape-1.txt",
    "../../../../../../../../tmp/escape-2.txt",
    "/tmp/escape-3.txt",
    "/etc/passwd",
    "..\\..\\escape-4.txt",
    "C:\\Windows\\System32\\escape-5.txt",
    "\\\\server\\share\\escape-6.txt",
    "nul\x00byte.txt",
    "a\x00/../../escape-7.txt",
    "\uff0e\uff0e\uff0fescape-8.txt",  # fullwidth ../
    "\u2025\u2215escape-9.txt",  # two-dot leader, division slash
    "..\u2044escape-10.txt",  # fraction slash
    "%2e%2e%2fescape-11.txt",
    "..%2f..%2fescape-12.txt",
    "CON",
    "con.txt",
    "PRN.log",
    "AUX",
    "NUL.tar.gz",
    "COM1",
    "LPT9.txt",
    "COM\u00b9.txt",
    "x" * 5000 + ".txt",
    "\u00e9" * 400 + ".pdf",
    ".",
    "..",
    "...",
    " ",
    ".hidden",
    "dots.at.end...",
    "\u202eexe.txt",
    "zero\u200bwidth.txt",
    "storage",
    "chunks",
    "../data/pyfiledrop.sqlite3",
    "../chunks/00000000-0000-0000-0000-000000000000.part",
    "line\r\nbreak.txt",
    "tab\tname.txt",
]
WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$", re.IGNORECASE)


def snapshot(root: Path) -> set[Path]:
    return {path for path in root.rglob("*")}


def assert_safe_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
    assert not name.startswith(".")
    assert not WINDOWS_RESERVED.match(name), name
    assert len(name.encode()) <= 255


def assert_contained(server: Server, before: set[Path]) -> None:
    """New paths only as direct children of storage/ and chunks/ (or the database's files)."""
    for path in snapshot(server.root) - before:
        assert path.parent in (server.storage_dir, server.chunks_dir, server.data_dir), path
        if path.parent == server.storage_dir:
            assert path.is_file() and not path.is_symlink()
            assert_safe_name(path.name)
    for outside in ("escape-1.txt", "escape-2.txt", "escape-3.txt", "escape-4.txt"):
        assert not (server.root.parent / outside).exists()
        assert not (Path("/tmp") / outside).exists()


def test_hostile_file_names_on_every_upload_path(server: Server) -> None:
    before = snapshot(server.root)
    passwd = Path("/etc/passwd").stat()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        client.get("/healthz")
        stored: dict[str, bytes] = {}
        refused: set[tuple[str, str]] = set()
        for number, name in enumerate(HOSTILE_NAMES):
            for way in ("one-shot", "chunked", "put"):
                data = f"{number} {way} {name}".encode()
                if way == "put":
                    response = client.put(f"/put/{quote(name, safe='')}", content=data)
                else:
                    fields = []
                    if way == "chunked":
                        fields = list(chunk_fields(str(uuid.uuid4()), 0, 1024, len(data)).items())
                    body = multipart(fields, name.replace('"', "%22"), data)
                    response = client.post(
                        "/upload",
                        content=body,
                        headers={"Content-Type": "multipart/form-data; boundary=rawb0undary"},
                    )
                assert response.status_code < 500, (name, way, response.text)
                if response.status_code in (200, 201):
                    record = response.json().get("file", response.json())
                    assert_safe_name(record["name"])
                    stored[record["id"]] = data
                else:
                    refused.add((name, way))
        # What was stored reads back as the bytes sent under its own id.
        for file_id, data in stored.items():
            assert client.get(f"/download/{file_id}").content == data
    # Refused, each with a 4xx: part headers too long or broken by CR LF, and PUT URLs that
    # name no file ("/put/." and "/put/.." are normalized away by the client, " " is empty).
    long_name = HOSTILE_NAMES[22]
    assert refused <= {
        *(
            (bad, way)
            for bad in (long_name, "line\r\nbreak.txt")
            for way in ("one-shot", "chunked")
        ),
        *((bad, "put") for bad in (".", "..", " ")),
    }
    assert_contained(server, before)
    assert Path("/etc/passwd").stat().st_mtime == passwd.st_mtime


def test_literal_dot_segments_in_raw_paths(server: Server) -> None:
    """Paths as sent on the wire (no client normalizes them): `..`, encoded and double-encoded
    separators, NUL, backslashes; in every route that takes a name or an id."""
    before = snapshot(server.root)
    upload_id = str(uuid.uuid4())
    paths = [
        "/put/../../escape-1.txt",
        "/put/..%2f..%2fescape-1.txt",
        "/put/%2e%2e%2f%2e%2e%2fescape-1.txt",
        "/put/%252e%252e%252fescape-1.txt",
        "/put/..%5c..%5cescape-4.txt",
        "/put/%00escape-3.txt",
        "/put//tmp/escape-3.txt",
        "/put/%2ftmp%2fescape-3.txt",
    ]
    for path in paths:
        response = exchange(server.port, head("PUT", path, length=5) + b"hello")
        assert response is not None and response.status < 500, path
        if response.status == 201:
            assert_safe_name(response.json()["name"])
    ids = ["../../etc/passwd", "..%2f..%2fdata", "%00", f"{upload_id}/../..", "..\\..", "a" * 5000]
    for bad in ids:
        for method, template in [
            ("GET", "/upload/{}"),
            ("POST", "/upload/{}/finish"),
            ("GET", "/download/{}"),
            ("GET", "/api/files/{}"),
            ("DELETE", "/api/files/{}"),
            ("HEAD", "/files/{}"),
            ("PATCH", "/files/{}"),
        ]:
            response = exchange(server.port, head(method, template.format(bad), length=0))
            assert response is not None, (method, bad)
            assert response.status in (400, 403, 404, 405, 410, 412, 415), (method, bad, response)
    assert_contained(server, before)


def test_storage_folder_symlink_is_not_followed_out(server: Server, tmp_path: Path) -> None:
    """An operator-made symlink in the storage folder named like an upload: the upload takes
    another name instead of writing through the link."""
    target = tmp_path / "outside.txt"
    target.write_bytes(b"untouched")
    os.symlink(target, server.storage_dir / "linked.txt")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.put("/put/linked.txt", content=b"new bytes")
    assert response.status_code == 201
    assert response.json()["name"] == "linked.txt"  # as sent; stored under another name
    assert (server.storage_dir / "linked (1).txt").read_bytes() == b"new bytes"
    assert target.read_bytes() == b"untouched"
