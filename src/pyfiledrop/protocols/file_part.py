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
"""

from __future__ import annotations

import ctypes
from typing import Any

from python_multipart.multipart import MultipartState

_libc = ctypes.CDLL(None, use_errno=True)
try:
    _memmem: Any = _libc.memmem
    _memmem.restype = ctypes.c_void_p
    _memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
except AttributeError:  # a libc without memmem: bytes.find does it
    _memmem = None


def contains(piece: bytes | bytearray, needle: bytes) -> bool:
    if _memmem is None or not piece:
        return needle in piece
    if isinstance(piece, bytearray):
        # The ctypes object holds a buffer export only for this call: the body reader's pool
        # reuses a buffer once nothing refers to it.
        address = ctypes.addressof(ctypes.c_char.from_buffer(piece))
        return bool(_memmem(address, len(piece), needle, len(needle)))
    return bool(_memmem(ctypes.c_char_p(piece), len(piece), needle, len(needle)))


def plain_bytes(parser: Any, piece: bytes | bytearray) -> int:
    """How many leading bytes of `piece` are surely data of the part `parser` is in the middle
    of (0 when that can't be told cheaply)."""
    delimiter = getattr(parser, "boundary", None)
    if (
        getattr(parser, "state", None) != MultipartState.PART_DATA
        or getattr(parser, "index", None) != 0  # no delimiter begun in the last piece
        or not isinstance(delimiter, bytes)
    ):
        return 0
    plain = len(piece) - len(delimiter) + 1
    if plain <= 0 or contains(piece, delimiter):
        return 0
    return plain
