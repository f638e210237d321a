"""Key-change signals: announcing never fails a change; the listener keeps listening whatever
its connection raises."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from issuer.keys import events


class FlakyRedis:
    """A Redis client whose first subscription dies as a reset one does under uvloop."""

    def __init__(self) -> None:
        self.subscriptions = 0

    @contextlib.asynccontextmanager
    async def pubsub(self) -> AsyncIterator["FlakyRedis"]:
        self.subscriptions += 1
        if self.subscriptions == 1:
            raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")
        yield self

    async def subscribe(self, _: str) -> None:
        pass

    async def listen(self) -> AsyncIterator[dict[str, object]]:
        yield {"type": "message", "data": b"changed"}
        await asyncio.Event().wait()


async def test_the_listener_survives_an_error_that_is_not_redis_own(monkeypatch):
    real_sleep = asyncio.sleep

    async def no_wait(_: float) -> None:
        await real_sleep(0)

    monkeypatch.setattr(events.asyncio, "sleep", no_wait)
    client, wake = FlakyRedis(), asyncio.Event()
    listener = asyncio.create_task(events.listen(client, "issuer:", wake))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(wake.wait(), timeout=2)
    finally:
        listener.cancel()
    assert client.subscriptions == 2


@pytest.mark.parametrize(
    "url", ["redis//localhost:6379/11", "redis://localhost:99999/0", "redis://[::1/0"]
)
def test_an_announcement_to_a_malformed_url_is_a_warning(caplog, url):
    # The audit: Redis.from_url's ValueError escaped, so generate_keys.py and rotate_keys.py
    # printed a traceback and exited 1 after committing their change.
    with caplog.at_level(logging.WARNING, logger=events.__name__):
        events.announce(url, "issuer:")
    assert any("next poll" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("url", [None, ""])
def test_without_redis_an_announcement_is_nothing_to_warn_about(caplog, url):
    # Redis is optional: the scripts announce every change, with or without it.
    with caplog.at_level(logging.DEBUG, logger=events.__name__):
        events.announce(url, "issuer:")
    assert caplog.records == []
