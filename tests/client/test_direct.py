"""`direct`: a download's writes, direct where aligned, through the page cache otherwise."""

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from pyfiledrop.client import direct

BLOCK = direct.BLOCK


def _write(path: Path, pieces: list[tuple[int, bytes]]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    writer = direct.Writer(path, fd)
    buffer = direct.aligned_buffer(4 * BLOCK)
    try:
        for offset, data in pieces:
            buffer[: len(data)] = data
            with memoryview(buffer) as view:
                writer.write_at(view[: len(data)], offset)
    finally:
        writer.close()
        os.close(fd)


PIECES = [
    (0, os.urandom(4 * BLOCK)),  # aligned: direct
    (4 * BLOCK, os.urandom(2 * BLOCK + 100)),  # the length is not aligned: page cache
    (6 * BLOCK + 100, os.urandom(3 * BLOCK)),  # nor the offset
    (9 * BLOCK + 100, os.urandom(7)),
]
EXPECTED = b"".join(data for _, data in PIECES)


def test_aligned_and_unaligned_writes_make_the_exact_file(tmp_path: Path) -> None:
    _write(tmp_path / "out.bin", PIECES)
    assert (tmp_path / "out.bin").read_bytes() == EXPECTED


def test_a_disk_that_refuses_an_aligned_direct_write_gets_it_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open, real_pwrite = os.open, os.pwrite
    direct_fds: set[int] = set()

    def opening(path: Any, flags: int, *args: Any) -> int:
        fd = real_open(path, flags & ~direct._O_DIRECT, *args)
        if flags & direct._O_DIRECT:
            direct_fds.add(fd)
        return fd

    def refusing(fd: int, data: Any, offset: int) -> int:
        if fd in direct_fds:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(direct, "_O_DIRECT", direct._O_DIRECT or 0x4000)
    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "pwrite", refusing)
    _write(tmp_path / "out.bin", PIECES)
    assert direct_fds  # the direct write was tried
    assert (tmp_path / "out.bin").read_bytes() == EXPECTED


def test_a_filesystem_without_o_direct_gets_everything_through_the_page_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def opening(path: Any, flags: int, *args: Any) -> int:
        if flags & direct._O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(direct, "_O_DIRECT", direct._O_DIRECT or 0x4000)
    monkeypatch.setattr(os, "open", opening)
    _write(tmp_path / "out.bin", PIECES)
    assert (tmp_path / "out.bin").read_bytes() == EXPECTED


def test_other_write_errors_are_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: Any, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(OSError) as raised:
        _write(tmp_path / "out.bin", PIECES[:1])
    assert raised.value.errno == errno.ENOSPC


def test_page_cache_writes_go_in_pieces_and_direct_ones_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pwrite = os.pwrite
    lengths: list[int] = []

    def recording(fd: int, data: Any, offset: int) -> int:
        lengths.append(len(data))
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", recording)
    size = 3 * direct.CACHED_PIECE + BLOCK
    data = os.urandom(size)
    for direct_writes in (False, True):
        path = tmp_path / f"out-{direct_writes}.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        writer = direct.Writer(path, fd, direct=direct_writes)
        opened_direct = writer._direct >= 0  # False where the filesystem refuses O_DIRECT
        buffer = direct.aligned_buffer(size)
        buffer[:] = data
        lengths.clear()
        try:
            with memoryview(buffer) as view:
                writer.write_at(view, 0)
        finally:
            writer.close()
            os.close(fd)
        assert path.read_bytes() == data
        if opened_direct:
            assert lengths[0] == size  # one write, refused or not
        else:
            assert lengths == [direct.CACHED_PIECE] * 3 + [BLOCK]
