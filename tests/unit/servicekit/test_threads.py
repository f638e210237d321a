"""`WorkerThreads`: calls run off the event loop, results and errors come back to the caller,
and the threads carry their names in the kernel too."""

import asyncio
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicekit.threads import WorkerThreads


@pytest.fixture
def pool() -> Iterator[WorkerThreads]:
    workers = WorkerThreads(2, name="signing")
    yield workers
    workers.close()


async def test_a_call_runs_on_a_worker_thread_and_returns_its_result(pool):
    loop_thread = threading.get_ident()

    def work(a: int, b: int) -> tuple[int, int]:
        return a + b, threading.get_ident()

    total, thread = await pool.run(work, 2, 3)
    assert total == 5
    assert thread != loop_thread


async def test_an_exception_reaches_the_caller(pool):
    def fail() -> None:
        raise ValueError("bad key")

    with pytest.raises(ValueError, match="bad key"):
        await pool.run(fail)


async def test_calls_spread_over_the_threads_and_all_complete(pool):
    started = threading.Barrier(2, timeout=5)

    def meet(n: int) -> int:
        started.wait()  # both threads must be busy at once for this to return
        return n

    assert await asyncio.gather(pool.run(meet, 1), pool.run(meet, 2)) == [1, 2]


async def test_a_cancelled_caller_leaves_the_pool_working(pool):
    gate = threading.Event()
    waiting = asyncio.create_task(pool.run(gate.wait, 5))
    await asyncio.sleep(0.01)
    waiting.cancel()
    gate.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await pool.run(lambda: "still serving") == "still serving"


def test_a_caller_whose_loop_closed_does_not_stop_the_thread():
    # An app that shut down without waiting for its call: the answer has nowhere to go, and
    # the thread must go on serving the next caller.
    pool = WorkerThreads(1)
    gate = threading.Event()
    gone = asyncio.new_event_loop()
    call = gone.create_task(pool.run(gate.wait, 5))
    gone.run_until_complete(asyncio.sleep(0.05))  # the call is on the thread
    call.cancel()
    gone.run_until_complete(asyncio.gather(call, return_exceptions=True))
    gone.close()
    gate.set()

    async def next_caller() -> str:
        return await asyncio.wait_for(pool.run(lambda: "still serving"), timeout=5)

    try:
        assert asyncio.run(next_caller()) == "still serving"
    finally:
        pool.close()


@pytest.mark.skipif(sys.platform != "linux", reason="thread names in /proc are Linux's")
async def test_threads_are_named_for_top_and_ps(pool):
    def own_name() -> str:
        native = threading.get_native_id()
        return Path(f"/proc/self/task/{native}/comm").read_text().strip()

    names = {await pool.run(own_name) for _ in range(20)}
    assert names <= {"signing_0", "signing_1"}
    assert names
