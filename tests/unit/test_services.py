"""The composition root's background tasks: stopping them is bounded."""

import asyncio
import contextlib
import logging

from issuer import services


async def _swallowing(cancellations_swallowed: int, stopped: list[bool]) -> None:
    """Work that loses the first cancellations, as redis-py's pub/sub can while it subscribes."""
    lost = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost == cancellations_swallowed:
                stopped.append(True)
                raise
            lost += 1


async def test_a_task_that_loses_a_cancellation_is_cancelled_again_and_stops():
    # The audit: with Redis configured, an issuer whose start failed (its port taken) never
    # exited, the listener's cancellation lost inside redis-py.
    stopped: list[bool] = []
    resources = contextlib.AsyncExitStack()
    services._run_in_background(resources, _swallowing(2, stopped))
    await asyncio.sleep(0)  # the task starts
    await asyncio.wait_for(resources.aclose(), timeout=5)
    assert stopped == [True]


async def test_a_task_that_does_not_stop_is_left_behind_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(services, "STOP_ATTEMPTS", 3)
    stopped: list[bool] = []
    resources = contextlib.AsyncExitStack()
    services._run_in_background(resources, _swallowing(5, stopped))
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="issuer.services"):
        await asyncio.wait_for(resources.aclose(), timeout=5)
    assert not stopped and "did not stop" in caplog.text
    (left,) = [t for t in asyncio.all_tasks() if "_swallowing" in repr(t.get_coro())]
    while not left.done():  # the sixth cancellation ends it
        left.cancel()
        await asyncio.wait({left}, timeout=0.1)
    assert stopped == [True]


async def test_a_task_cleaning_up_after_its_cancellation_is_given_time_to_finish():
    # The review: cancelled again every 0.1 s, redis-py's pub/sub had its own clean-up (closing
    # its connection) cut short.
    cleaned: list[bool] = []

    async def cleaning_up() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)
            cleaned.append(True)
            raise

    resources = contextlib.AsyncExitStack()
    services._run_in_background(resources, cleaning_up())
    await asyncio.sleep(0)
    await asyncio.wait_for(resources.aclose(), timeout=5)
    assert cleaned == [True]
