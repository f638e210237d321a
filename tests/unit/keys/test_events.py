"""Key-change signals: announcing never fails a change; the listener keeps listening whatever
its connection raises."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from issuer.keys import events
from issuer.storage.redis_client import connect_redis
from tests.support import REDIS_URL


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

    async def get_message(self, timeout: float) -> dict[str, object] | None:
        if self.subscriptions == 2:
            self.subscriptions += 1
            return {"type": "message", "data": b"changed"}
        await asyncio.Event().wait()
        return None


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
    assert client.subscriptions == 3  # subscribed twice, then heard


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


class SilentRelay:
    """A relay to the test Redis. `silence()` drops its connections to Redis and leaves the
    client's open, saying nothing: what a partition, or a Redis host gone, looks like."""

    def __init__(self) -> None:
        self._upstreams: list[asyncio.StreamWriter] = []
        self._held: list[asyncio.StreamWriter] = []
        self._silent = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"

    def silence(self) -> None:
        self._silent = True
        for writer in self._upstreams:
            writer.close()

    def speak(self) -> None:
        self._silent = False  # new connections are relayed again

    async def aclose(self) -> None:
        # Both sides of every connection, and the relaying tasks ended: a connection to Redis
        # left open warned (ResourceWarning) in whichever test ran next in this process.
        for writer in [*self._held, *self._upstreams]:
            writer.close()
        self._server.close()
        await self._server.wait_closed()
        async with asyncio.timeout(5):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in [*self._held, *self._upstreams]:
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        host, port = REDIS_URL.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        upstream_reader, upstream = await asyncio.open_connection(host, int(port))
        self._upstreams.append(upstream)
        self._held.append(writer)
        silent_from_start = self._silent

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if not (self._silent or silent_from_start):
                        sink.write(data)
                        await sink.drain()

        await asyncio.gather(pipe(reader, upstream), pipe(upstream_reader, writer))


async def subscribers(checker: aioredis.Redis, channel: str) -> int:
    return int((await checker.pubsub_numsub(channel))[0][1])


async def test_the_listener_hears_announcements_again_after_redis_went_silent(
    monkeypatch, redis_prefix
):
    # The review: the listener waited for the next message for ever. After its Redis went
    # without a word (a partition; Redis closing its side) it never subscribed again, and
    # the replica learned of every later key change only at its next poll.
    # Short enough for a quick test, long enough that a loaded machine never takes a ping's
    # answer for silence (which would reconnect and miss the announcement below).
    monkeypatch.setattr(events, "SILENCE", 1.0, raising=False)
    relay, wake = SilentRelay(), asyncio.Event()
    await relay.start()
    client = connect_redis(relay.url)
    assert client is not None
    checker = aioredis.Redis.from_url(REDIS_URL)
    channel = redis_prefix + events.CHANNEL
    listener = asyncio.create_task(events.listen(client, redis_prefix, wake))
    try:
        async with asyncio.timeout(5):
            while not await subscribers(checker, channel):
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # silence between announcements is no failure: pings answer
        await checker.publish(channel, "1")
        await asyncio.wait_for(wake.wait(), timeout=2)
        relay.silence()
        async with asyncio.timeout(5):  # Redis has let go of the subscription
            while await subscribers(checker, channel):
                await asyncio.sleep(0.05)
        relay.speak()
        wake.clear()
        async with asyncio.timeout(10):  # given up after two silences (2 s), made anew
            while not await subscribers(checker, channel):
                await asyncio.sleep(0.05)
        await checker.publish(channel, "1")
        await asyncio.wait_for(wake.wait(), timeout=2)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await client.aclose()
        await checker.aclose()
        await relay.aclose()
