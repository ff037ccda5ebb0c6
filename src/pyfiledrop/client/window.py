"""The read window of one upload: the reader (which hashes) and the senders walk the same file.

The senders send with `sendfile`, so their bytes come from the page cache. They only send what
the reader has already read (then the file is read from disk once, by the reader, even when it
is not cached), and the reader stays at most `ahead` bytes past the first byte not yet sent (so
what it read is still cached when a sender gets to it). Senders take chunks in index order.
"""

import threading
from collections import deque
from collections.abc import Iterable

POLL_SECONDS = 0.2  # how often a waiting thread looks at `abort`


class Window:
    def __init__(self, chunks: Iterable[tuple[int, int]], ahead: int, abort: threading.Event):
        """`chunks`: (index, offset) of each chunk to send, in order; `ahead` >= one piece."""
        self._todo = deque(chunks)
        self._ahead = ahead
        self._abort = abort
        self._changed = threading.Condition()
        self._read = 0
        self._sending: dict[int, int] = {}  # sender -> offset of its next byte to send

    def claim(self, sender: int) -> int | None:
        """The next chunk for `sender` to send; None when none is left (or on abort)."""
        with self._changed:
            self._sending.pop(sender, None)
            if not self._todo or self._abort.is_set():
                self._changed.notify_all()
                return None
            index, offset = self._todo.popleft()
            self._sending[sender] = offset
            self._changed.notify_all()
            return index

    def release(self, sender: int) -> None:
        """`sender` sends no more (done, or failed for good)."""
        with self._changed:
            self._sending.pop(sender, None)
            self._changed.notify_all()

    def sent_to(self, sender: int, offset: int) -> None:
        """`sender`'s next byte to send is at `offset` (back at a chunk's start on a retry)."""
        with self._changed:
            self._sending[sender] = offset
            self._changed.notify_all()

    def wait_read(self, end: int) -> bool:
        """Wait until the reader has read up to `end`; False on abort."""
        with self._changed:
            while self._read < end:
                if self._abort.is_set():
                    return False
                self._changed.wait(POLL_SECONDS)
            return True

    def read_to(self, offset: int) -> bool:
        """The reader has read up to `offset`; returns once it may read on, False on abort."""
        with self._changed:
            self._read = offset
            self._changed.notify_all()
            while offset >= self._first_unsent() + self._ahead:
                if self._abort.is_set():
                    return False
                self._changed.wait(POLL_SECONDS)
            return True

    def _first_unsent(self) -> float:
        starts = list(self._sending.values())
        if self._todo:
            starts.append(self._todo[0][1])
        return min(starts, default=float("inf"))
