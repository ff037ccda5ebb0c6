"""A TCP relay between a client and a server that can damage the bytes going to the server.

It stands for a faulty disk, NIC or middlebox: the server gets (and stores, and hashes) bytes the
client never sent, which only an end-to-end checksum can notice.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

PIECE = 256 * 1024


class Relay:
    def __init__(self, target_port: int, flip_at: int | None, cut_at: int | None) -> None:
        """Once, on the first connection to carry that many bytes (which connection carries
        the data is the client's business): `flip_at` inverts the bits of that upstream byte;
        `cut_at` drops the connection once that many bytes went downstream."""
        self.target_port = target_port
        self.flip_at = flip_at
        self.cut_at = cut_at
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.connections = 0
        self.flipped = False
        self.cut = False
        self._closing = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closing:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.connections += 1
            pumps = (
                (downstream, upstream, self.flip_at, None),
                (upstream, downstream, None, self.cut_at),
            )
            for pump in pumps:
                threading.Thread(target=self._pump, args=pump, daemon=True).start()

    def _pump(
        self, source: socket.socket, sink: socket.socket, flip_at: int | None, cut_at: int | None
    ) -> None:
        seen = 0
        did_cut = False
        buffer = bytearray(PIECE)
        with contextlib.suppress(OSError):
            while True:
                size = source.recv_into(buffer)
                if size == 0:
                    break
                if flip_at is not None and seen <= flip_at < seen + size and self._once("flipped"):
                    buffer[flip_at - seen] ^= 0xFF
                if cut_at is not None and seen + size >= cut_at and self._once("cut"):
                    did_cut = True
                    sink.sendall(memoryview(buffer)[: cut_at - seen])
                    break
                seen += size
                sink.sendall(memoryview(buffer)[:size])
        for end in (source, sink) if did_cut else (sink,):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR if did_cut else socket.SHUT_WR)

    def _once(self, what: str) -> bool:
        """True for the one connection that does `what` (sets the flag of that name)."""
        with self._lock:
            if getattr(self, what):
                return False
            setattr(self, what, True)
            return True

    def close(self) -> None:
        self._closing = True
        self.listener.close()


@contextlib.contextmanager
def relay(
    target_port: int, flip_at: int | None = None, cut_at: int | None = None
) -> Iterator[Relay]:
    running = Relay(target_port, flip_at, cut_at)
    try:
        yield running
    finally:
        running.close()
