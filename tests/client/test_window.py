"""`window`: the reader stays a bounded distance ahead of the senders, who follow it."""

import threading

from pyfiledrop.client.window import Window


def test_the_reader_stops_ahead_bytes_past_the_first_unsent_byte() -> None:
    abort = threading.Event()
    window = Window([(0, 0), (1, 10), (2, 20)], ahead=15, abort=abort)
    assert window.claim(sender=0) == 0
    abort.set()  # from here on, a call that would wait returns False at once instead
    assert window.read_to(14)
    assert not window.read_to(15)  # sender 0 is still at byte 0
    window.sent_to(0, 10)  # sender 0 is done with chunk 0: chunk 1 (not claimed) is first
    assert window.read_to(24)
    assert not window.read_to(25)


def test_a_sender_waits_for_the_reader() -> None:
    abort = threading.Event()
    window = Window([(0, 0)], ahead=8, abort=abort)
    assert window.claim(sender=0) == 0
    abort.set()
    assert window.read_to(4)
    assert window.wait_read(4)
    assert not window.wait_read(5)


def test_a_retry_moves_a_sender_back_and_holds_the_reader_again() -> None:
    abort = threading.Event()
    window = Window([(0, 0), (1, 10)], ahead=15, abort=abort)
    assert window.claim(sender=0) == 0
    assert window.claim(sender=1) == 1
    window.sent_to(0, 10)
    window.sent_to(1, 16)
    abort.set()
    assert window.read_to(24)
    window.sent_to(0, 0)  # chunk 0 is sent again from its start
    assert not window.read_to(24)


def test_no_bound_once_every_chunk_is_sent_and_no_chunk_on_abort() -> None:
    abort = threading.Event()
    window = Window([(0, 0), (1, 10)], ahead=4, abort=abort)
    assert window.claim(sender=0) == 0
    assert window.claim(sender=1) == 1
    assert window.claim(sender=2) is None
    window.release(0)
    window.release(1)
    abort.set()
    assert window.read_to(1 << 40)
    assert Window([(0, 0)], ahead=4, abort=abort).claim(sender=0) is None


def test_the_reader_wakes_when_the_sender_moves_on() -> None:
    window = Window([(0, 0), (1, 10)], ahead=10, abort=threading.Event())
    assert window.claim(sender=0) == 0
    passed = threading.Event()

    def read() -> None:
        if window.read_to(10):  # waits: sender 0 is at byte 0
            passed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert window.wait_read(10)  # the reader got there
    assert not passed.is_set()
    window.sent_to(0, 10)
    reader.join(timeout=10)
    assert passed.is_set()
