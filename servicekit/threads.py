"""`WorkerThreads`: a few threads for CPU work that releases the GIL (RSA signing), with the
cheapest hand-off to and from the event loop.

`loop.run_in_executor` wraps each call in two futures (concurrent and asyncio), chains them
with callbacks and takes the executor's lock: tens of microseconds of the loop's time per
call, which on the token path cost about as much as the work being handed off. Here a call is
one `SimpleQueue.put` (C, lock-free for the caller) and the result comes back through one
`call_soon_threadsafe`.
"""

import asyncio
import contextlib
import ctypes
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_STOP = object()


class WorkerThreads:
    """`threads` daemon threads running submitted calls in order of arrival."""

    def __init__(self, threads: int, name: str = "worker"):
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{n}", daemon=True)
            for n in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` on a worker thread; its result or exception, awaited."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((loop, future, function, args))
        return await future

    def close(self) -> None:
        """Let every thread finish its current call and stop."""
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        _name_os_thread(threading.current_thread().name)
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            loop, future, function, args = item
            answer: Callable[[asyncio.Future[Any], Any], None]
            try:
                value: Any = function(*args)
                answer = _resolve
            except BaseException as exc:  # handed to the awaiting caller
                value, answer = exc, _fail
            # RuntimeError: the caller's loop closed meanwhile (its app stopped without
            # waiting for this call); nobody is left to answer, and the other callers wait.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(answer, future, value)


_PR_SET_NAME = 15  # linux/prctl.h


def _name_os_thread(name: str) -> None:
    """Give the calling thread `name` in the kernel too (Linux; its first 15 bytes), so that
    `top -H`, `ps -L` and /proc show which threads sign. Python names its threads only for
    itself (before 3.14); where the call is missing, the thread keeps its process's name."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def _resolve(future: "asyncio.Future[Any]", result: Any) -> None:
    if not future.done():  # the caller may have been cancelled meanwhile
        future.set_result(result)


def _fail(future: "asyncio.Future[Any]", exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
