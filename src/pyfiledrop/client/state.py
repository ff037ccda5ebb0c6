"""Small JSON files that let an interrupted upload or download continue where it stopped.

One file per (absolute local path, server URL), in $PYFILEDROP_STATE_DIR, else
$XDG_CACHE_HOME/pyfiledrop, else ~/.cache/pyfiledrop. Written atomically; a file that cannot be
read as state is treated as absent (the transfer then simply starts over).
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def state_dir() -> Path:
    explicit = os.environ.get("PYFILEDROP_STATE_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "pyfiledrop"


def _state_path(kind: str, local_path: Path, url: str) -> Path:
    key = hashlib.sha256(f"{kind}\n{local_path}\n{url}".encode()).hexdigest()[:32]
    return state_dir() / f"{kind}-{key}.json"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    # An upload's state holds its owner secret: readable by this user only, from the start
    # (created 0600, not chmod-ed after), in a folder only this user can list.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(json.dumps(data))
    os.replace(temporary, path)


def _delete(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class FileIdentity:
    """What tells us the local file is still the one we started uploading."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> "FileIdentity":
        info = path.stat()
        return cls(size=info.st_size, mtime_ns=info.st_mtime_ns, inode=info.st_ino)

    def difference(self, other: "FileIdentity") -> str | None:
        """Why `other` is not the same file, in words, or None when it is."""
        if self.size != other.size:
            return f"its size changed from {self.size} to {other.size} bytes"
        if self.inode != other.inode:
            return "it was replaced by another file"
        if self.mtime_ns != other.mtime_ns:
            return "it was modified"
        return None


@dataclass(frozen=True)
class UploadState:
    path: str
    url: str
    dzuuid: str
    chunk_size: int
    identity: FileIdentity
    owner: str | None


def load_upload(local_path: Path, url: str) -> UploadState | None:
    data = _read(_state_path("upload", local_path, url))
    if data is None:
        return None
    try:
        state = UploadState(
            path=str(data["path"]),
            url=str(data["url"]),
            dzuuid=str(data["dzuuid"]),
            chunk_size=int(data["chunk_size"]),
            identity=FileIdentity(**{k: int(v) for k, v in data["identity"].items()}),
            owner=None if data.get("owner") is None else str(data["owner"]),
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if state.path != str(local_path) or state.url != url or state.chunk_size <= 0:
        return None
    return state


def save_upload(state: UploadState) -> None:
    _write(_state_path("upload", Path(state.path), state.url), asdict(state))


def delete_upload(local_path: Path, url: str) -> None:
    _delete(_state_path("upload", local_path, url))


@dataclass(frozen=True)
class DownloadState:
    """The validator the partial file was fetched under, for `If-Range` when resuming."""

    path: str
    url: str
    etag: str
    resume_token: str = ""  # a limited link's resumption needs the token of its download


def load_download(local_path: Path, url: str) -> DownloadState | None:
    data = _read(_state_path("download", local_path, url))
    if data is None:
        return None
    try:
        return DownloadState(
            path=str(data["path"]),
            url=str(data["url"]),
            etag=str(data["etag"]),
            resume_token=str(data.get("resume_token", "")),
        )
    except KeyError:
        return None


def save_download(state: DownloadState) -> None:
    _write(_state_path("download", Path(state.path), state.url), asdict(state))


def delete_download(local_path: Path, url: str) -> None:
    _delete(_state_path("download", local_path, url))
