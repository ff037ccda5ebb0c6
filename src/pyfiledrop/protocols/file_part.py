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

A Dropzone chunk says how long its file part is, so most of its bytes are not searched at all
(`claimed_bytes`): they go to the sink, and the parser sees the claim's last bytes and what
follows, where the delimiter must stand. A part a little shorter than claimed ends at its
delimiter, a much shorter one leaves the body ending mid-part, both 400; a longer one is over
the claim (413), as when parsing it all. But a file part holding its own delimiter past the
first buffer's head (`dropzone.HEAD_BYTES`) and as long as claimed is now stored whole, not
refused (a client chooses a boundary its data does not hold), and one much shorter than claimed
followed by fields (Dropzone sends none after the file) may be 413 rather than 400.
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
    if _memmem is None or not piece:
        return needle in piece
    if isinstance(piece, bytearray):
        # The ctypes object holds a buffer export only for this call: the body reader's pool
        # reuses a buffer once nothing refers to it.
        address = ctypes.addressof(ctypes.c_char.from_buffer(piece))
        return bool(_memmem(address, len(piece), needle, len(needle)))
    return bool(_memmem(ctypes.c_char_p(piece), len(piece), needle, len(needle)))


def _in_part_data(parser: Any) -> bool:
    return (
        getattr(parser, "state", None) == MultipartState.PART_DATA
        and getattr(parser, "index", None) == 0  # no delimiter begun in the last piece
        and isinstance(getattr(parser, "boundary", None), bytes)
    )


def claimed_bytes(parser: Any, piece_length: int, remaining: int) -> int:
    """How many leading bytes of a piece go to the sink unsearched: the rest of a file part
    whose length the request claims (`remaining` of it still to come), when the parser is in its
    middle, but for the claim's last bytes: a part a little shorter than claimed must still end
    at its delimiter (400, as when parsing it all), not run on into the body's end."""
    if not _in_part_data(parser):
        return 0
    unsearched = remaining - len(parser.boundary) - len(_CLOSING)
    return max(0, min(piece_length, unsearched))


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
