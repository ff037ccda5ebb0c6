"""The resume state files: where they live, what they hold, what happens to damaged ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyfiledrop.client import state


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PYFILEDROP_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_state_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert state.state_dir() == tmp_path / "cache" / "pyfiledrop"
    monkeypatch.setenv("PYFILEDROP_STATE_DIR", str(tmp_path / "mine"))
    assert state.state_dir() == tmp_path / "mine"


def test_upload_state_round_trip_per_path_and_url(tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    identity = state.FileIdentity.of(source)
    saved = state.UploadState(str(source), "http://h:1", "u-1", 1024, identity, "secret")
    state.save_upload(saved)
    assert state.load_upload(source, "http://h:1") == saved
    assert state.load_upload(source, "http://other:1") is None
    state.delete_upload(source, "http://h:1")
    assert state.load_upload(source, "http://h:1") is None


def test_damaged_state_is_ignored(tmp_path: Path) -> None:
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    saved = state.UploadState(
        str(source), "http://h:1", "u", 10, state.FileIdentity.of(source), None
    )
    state.save_upload(saved)
    (only,) = state.state_dir().iterdir()
    only.write_text("{not json")
    assert state.load_upload(source, "http://h:1") is None
    only.write_text('{"path": 1}')
    assert state.load_upload(source, "http://h:1") is None


def test_identity_differences_in_words(tmp_path: Path) -> None:
    before = state.FileIdentity(size=10, mtime_ns=5, inode=7)
    assert before.difference(before) is None
    assert before.difference(state.FileIdentity(11, 5, 7)) == "its size changed from 10 to 11 bytes"
    assert before.difference(state.FileIdentity(10, 5, 8)) == "it was replaced by another file"
    assert before.difference(state.FileIdentity(10, 6, 7)) == "it was modified"


def test_state_files_are_private(tmp_path: Path) -> None:
    """They hold the owner secret: 0600 in a 0700 folder, whatever the umask."""
    import os

    source = tmp_path / "p.bin"
    source.write_bytes(b"p")
    saved = state.UploadState(
        str(source), "http://h:1", "u-2", 1024, state.FileIdentity.of(source), "secret"
    )
    old_umask = os.umask(0o022)
    try:
        state.save_upload(saved)
    finally:
        os.umask(old_umask)
    folder = state.state_dir()
    assert folder.stat().st_mode & 0o777 == 0o700
    (written,) = folder.iterdir()
    assert written.stat().st_mode & 0o777 == 0o600
