"""Writing a download's whole blocks with O_DIRECT: from our buffer to the disk, no page cache.

A buffered write copies every byte into the page cache (~0.24 s of CPU per GiB here, the
largest cost after SHA-256), then the kernel writes it back and the fsync before the rename
waits for that. A direct write hands the buffer to the disk: no copy, nothing left to write
back. It needs the buffer's address, the file offset and the length aligned to the disk's
block; `BLOCK` covers the usual 512 and 4096. What is not aligned (the body's last piece, a
resumed file's odd start) goes through the page cache, and so does everything where O_DIRECT is
missing or refused (macOS, tmpfs, some network filesystems).
"""

import contextlib
import errno
import mmap
import os

BLOCK = 4096
# Page-cache writes go in pieces no bigger than this. The kernel sizes the page-cache folios it
# makes by the write: a 4 MiB write asks for 2 MiB ones, and on fragmented memory it compacts
# to find them in the writer's own time (13% of a `--no-flush` download's CPU in one profile
# here, when 4 KiB writes like curl's never wait for it). 256 KiB folios are plentiful.
CACHED_PIECE = 256 << 10
_O_DIRECT: int = getattr(os, "O_DIRECT", 0)


def aligned_buffer(size: int) -> mmap.mmap:
    """Anonymous memory: page-aligned, as a direct write needs."""
    return mmap.mmap(-1, size)


class Writer:
    """Positional writes into one file, direct where they can be (all through the page cache
    with `direct=False`: a write that need not reach the disk soon is cheaper to leave there)."""

    def __init__(self, path: os.PathLike[str] | str, fd: int, direct: bool = True) -> None:
        self._fd = fd  # the file, opened for writing through the page cache
        self._direct = -1
        if direct and _O_DIRECT:
            # Where the filesystem refuses it, everything goes through the page cache.
            with contextlib.suppress(OSError):
                self._direct = os.open(path, os.O_WRONLY | _O_DIRECT)

    def write_at(self, view: memoryview, offset: int) -> None:
        """All of `view` at `offset`."""
        if self._direct >= 0 and offset % BLOCK == 0 and len(view) % BLOCK == 0:
            try:
                _write_all(self._direct, view, offset, len(view))
                return
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self.close()  # alignment this disk won't take: the page cache from now on
        _write_all(self._fd, view, offset, CACHED_PIECE)

    def close(self) -> None:
        if self._direct >= 0:
            os.close(self._direct)
            self._direct = -1


def _write_all(fd: int, view: memoryview, offset: int, piece: int) -> None:
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done : done + piece], offset + done)
