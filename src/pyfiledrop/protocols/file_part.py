"""The plain middle of a multipart file part, handed on without python-multipart.

In a part's data the parser only looks for the delimiter (`\\r\\n--boundary`), with `bytes.find`:
CPython's two-way search ran at 0.10-0.17 s/GiB here for a 40-60 byte delimiter in 1 MiB
buffers, the largest cost of a Dropzone chunk's parsing. glibc's `memmem` finds the same
delimiter in ~0.055 s/GiB (a two-byte shift table skips more of random data). So while the parser
is in the middle of the file part, a body buffer without the delimiter goes to the sink directly,
all but its last `len(delimiter) - 1` bytes (where a delimiter continued in the next buffer could
start); the parser sees that tail, so its state and what it emits stay exactly as if it had seen
the whole buffer. In a buffer holding the delimiter, the bytes before it go to the sink and the
parser takes the rest; a parser elsewhere (or of a version whose state this can't read) takes
the whole buffer.

A Dropzone chunk says how long its file part is (`remaining`): `memmem` looks for the
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


def find(piece: bytes | bytearray | memoryview, needle: bytes, end: int) -> int:
    """Where `needle` starts in `piece[:end]`, or -1."""
    end = min(end, len(piece))
    if isinstance(piece, memoryview) and piece.readonly:  # ctypes needs bytes or a writable view
        piece = piece[:end].tobytes()
    if _memmem is None or end <= 0:
        return bytes(piece[:end]).find(needle)
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


def plain_bytes(
    parser: Any, piece: bytes | bytearray | memoryview, remaining: int | None = None
) -> int:
    """How many leading bytes of `piece` are surely data of the part `parser` is in the middle
    of: those before the first delimiter in it, but for its last `len(delimiter) - 1` bytes
    (a delimiter may start there) and, when the request claims the part's length (`remaining`
    of it still to come), the claim's last bytes: the parser must see where the part ends."""
    if not _in_part_data(parser):
        return 0
    delimiter: bytes = parser.boundary
    plain = len(piece) - len(delimiter) + 1
    if remaining is not None:
        plain = min(plain, remaining - len(delimiter) - len(_CLOSING))
    if plain <= 0:
        return 0
    found = find(piece, delimiter, plain + len(delimiter) - 1)
    return plain if found < 0 else found
