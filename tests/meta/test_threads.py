"""The database threads' queue: results and errors reach the awaiting task, a call cancelled
before its turn never runs, and closing lets queued calls finish."""

from __future__ import annotations

import asyncio
import threading

import pytest

from pyfiledrop.meta.threads import CallThreads

WAIT_SECONDS = 10


def test_results_and_errors_reach_the_caller() -> None:
    threads = CallThreads("test-db")

    def fail() -> None:
        raise ValueError("no")

    async def main() -> None:
        assert await threads.run(lambda a, b: a + b, 2, 3) == 5
        assert await threads.run(threading.current_thread) is not threading.current_thread()
        with pytest.raises(ValueError, match="no"):
            await threads.run(fail)

    asyncio.run(main())
    assert threads.run_sync(lambda: "sync") == "sync"
    threads.close()


def test_a_call_cancelled_before_its_turn_does_not_run() -> None:
    threads = CallThreads("test-db")
    release = threading.Event()
    ran: list[str] = []

    async def main() -> None:
        blocker = threads.run(release.wait, WAIT_SECONDS)
        queued = threads.run(ran.append, "late")
        queued.cancel()
        release.set()
        assert await blocker
        # Calls run in order on one thread: once this one answered, the cancelled one is past.
        await threads.run(ran.append, "next")

    asyncio.run(main())
    threads.close()
    assert ran == ["next"]


def test_close_waits_for_queued_calls_and_keeps_their_order() -> None:
    threads = CallThreads("test-db")
    release = threading.Event()
    done: list[int] = []

    async def main() -> None:
        queued = [threads.run(release.wait, WAIT_SECONDS)]
        queued += [threads.run(done.append, number) for number in range(3)]
        release.set()
        await asyncio.to_thread(threads.close)  # returns once the threads have stopped
        await asyncio.wait_for(asyncio.gather(*queued), WAIT_SECONDS)

    asyncio.run(main())
    assert done == [0, 1, 2]


def test_several_threads_share_one_queue() -> None:
    threads = CallThreads("test-pg", 3)
    barrier = threading.Barrier(3, timeout=WAIT_SECONDS)

    async def main() -> list[int]:
        # Three calls that each wait for the other two: they only end if they run at once.
        return list(await asyncio.gather(*(threads.run(barrier.wait) for _ in range(3))))

    assert sorted(asyncio.run(main())) == [0, 1, 2]
    threads.close()
