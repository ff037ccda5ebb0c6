"""The plain middle of a multipart file part, handed on without python-multipart.

In a part's data the parser only looks for the delimiter (`\\r\\n--boundary`), with `bytes.find`:
CPython's two-way search ran at 0.10-0.17 s/GiB here for a 40-60 byte delimiter in 1 MiB
buffers, the largest cost of a Dropzone chunk's parsing. glibc's `memmem` finds the same
delimiter in ~0.055 s/GiB (a two-byte shift table skips more of random data). So while the parser
is in the middle of the file part, a body buffer without the delimiter goes to the sink directly,
all but its last `len(delimiter) - 1` bytes (where a delimiter continued in the next buffer could
start); the parser sees that tail, so its state and what it emits stay exactly as if it had seen
the whole buffer. A buffer holding the delimiter, or a parser elsewhere (or of a version whose
state this can't read), takes the parser's path whole.

A Dropzone chunk says how long its file part is (`claimed_bytes`): `memmem` looks for the
delimiter only in the part of a buffer the claim covers, and python-multipart sees only the
claim's last bytes and what follows (where the delimiter must stand) besides each body's first
buffer's head. A claim bounds the part but never carries it past a delimiter: a part shorter than
claimed ends there (400), however the bytes after it are padded, as any multipart reader of the
same body would see it; a longer one is over the claim (413).
"""

from __future__ import annotations

import ctypes
from typing import Any

from python_multipart.multipart import MultipartState

_CLOSING = b"--\r\n"  # what follows the last delimiter of a body
_libc = ctypes.CDLL(None, use_errno=True)
try:
    _memmem: Any = _libc.memmem
    _memmem.restype = ctypes.c_void_p
    _memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
except AttributeError:  # a libc without memmem: bytes.find does it
    _memmem = None


def contains(piece: bytes | bytearray, needle: bytes) -> bool:
    return find(piece, needle, len(piece)) >= 0


def find(piece: bytes | bytearray | memoryview, needle: bytes, end: int) -> int:
    """Where `needle` starts in `piece[:end]`, or -1."""
    end = min(end, len(piece))
    if isinstance(piece, memoryview) and piece.readonly:
        piece = piece[:end].tobytes()
    if _memmem is None or end <= 0:
        return (
            bytes(piece[:end]).find(needle)
            if isinstance(piece, memoryview)
            else (piece.find(needle, 0, end))
        )
    if isinstance(piece, bytes):
        address = ctypes.cast(ctypes.c_char_p(piece), ctypes.c_void_p).value or 0
    else:
        # The ctypes object holds a buffer export only for this call: the body reader's pool
        # reuses a buffer once nothing refers to it.
        address = ctypes.addressof(ctypes.c_char.from_buffer(piece))
    found = _memmem(address, end, needle, len(needle))
    return -1 if found is None else int(found) - address


def _in_part_data(parser: Any) -> bool:
    return (
        getattr(parser, "state", None) == MultipartState.PART_DATA
        and getattr(parser, "index", None) == 0  # no delimiter begun in the last piece
        and isinstance(getattr(parser, "boundary", None), bytes)
    )


def claimed_bytes(parser: Any, piece: bytes | bytearray | memoryview, remaining: int) -> int:
    """How many leading bytes of a piece go to the sink past the parser: the rest of a file part
    whose length the request claims (`remaining` of it still to come), when the parser is in its
    middle, up to the first delimiter in them, and but for the claim's last bytes and a buffer's
    last `len(delimiter) - 1` (where a delimiter may start): the parser must see where the part
    ends."""
    if not _in_part_data(parser):
        return 0
    delimiter: bytes = parser.boundary
    claimed = min(len(piece) - len(delimiter) + 1, remaining - len(delimiter) - len(_CLOSING))
    if claimed <= 0:
        return 0
    found = find(piece, delimiter, claimed + len(delimiter) - 1)
    return claimed if found < 0 else found


def plain_bytes(parser: Any, piece: bytes | bytearray) -> int:
    """How many leading bytes of `piece` are surely data of the part `parser` is in the middle
    of (0 when that can't be told cheaply)."""
    if not _in_part_data(parser):
        return 0
    delimiter: bytes = parser.boundary
    plain = len(piece) - len(delimiter) + 1
    if plain <= 0 or contains(piece, delimiter):
        return 0
    return plain
