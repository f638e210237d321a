"""Load generation and measurement: `wrk` runs, a fixed-rate prober, CPU accounting, and
side-by-side repetitions (A-B, B-A, A-B, ...) so both sides share the machine's drift.
"""

import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from servers import Service

DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
PAIRS = int(os.environ.get("BENCH_PAIRS", "3"))
# A short unmeasured run per side first: JIT warm-up, key fetches, connection pools.
WARMUP = float(os.environ.get("BENCH_WARMUP_SECONDS", "1"))
LUA = Path(__file__).with_name("wrk_json.lua")
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Load:
    """One measured run. `cores`: CPU seconds the server used per wall second, when metered."""

    rps: float
    p50_ms: float | None = None  # None: not an HTTP load (an in-process ceiling)
    p99_ms: float | None = None
    errors: int = 0
    cores: float | None = None
    sent: int = 0
    busiest_thread: float | None = None  # cores of the server's busiest thread
    machine_busy: float | None = None  # cores the whole machine was busy meanwhile
    # Cores by kind of thread: "main" (each process's first thread: the event loop of ours
    # and of Node), else the kernel's thread name without its number ("signing" for ours).
    thread_kinds: dict[str, float] | None = None


def _process_tree(pid: int) -> tuple[set[int], int]:
    """`pid` and its live descendants, and the utime+stime of them all plus the children they
    already reaped."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid, utime, stime, cutime, cstime = _stat_fields(text, 1, 11, 12, 13, 14)
        stats[int(entry.name)] = (ppid, utime + stime + cutime + cstime)
    tree, total = {pid}, 0
    grew = True
    while grew:
        grew = False
        for child, (ppid, _) in stats.items():
            if ppid in tree and child not in tree:
                tree.add(child)
                grew = True
    for member in tree:
        total += stats.get(member, (0, 0))[1]
    return tree, total


def _thread_ticks(pids: set[int]) -> dict[int, tuple[str, int]]:
    """The kind (see `Load.thread_kinds`) and utime+stime of each thread of `pids`, by id."""
    ticks: dict[int, tuple[str, int]] = {}
    for pid in pids:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in threads:
            try:
                text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            except OSError:
                continue
            utime, stime = _stat_fields(text, 11, 12)
            name = text[text.index("(") + 1 : text.rindex(")")]
            kind = "main" if int(tid) == pid else name.rstrip("0123456789").rstrip("_-")
            ticks[int(tid)] = (kind, utime + stime)
    return ticks


def _machine_ticks() -> tuple[int, int]:
    """Busy and idle ticks of all cores since boot (/proc/stat; steal counts as busy)."""
    with open("/proc/stat") as stat:
        user, nice, system, idle, iowait, irq, softirq, steal = (
            int(value) for value in stat.readline().split()[1:9]
        )
    return user + nice + system + irq + softirq + steal, idle + iowait


def _stat_fields(text: str, *indexes: int) -> list[int]:
    # The fields after the parenthesised command name (which may hold spaces), state first.
    fields = text[text.rindex(")") + 2 :].split()
    return [int(fields[i]) for i in indexes]


class CpuMeter:
    """Cores a server used while the block ran: its CPU time over the wall time, in all and on
    its busiest thread (a thread near 1.0 is what limits it: its work cannot spread), and the
    cores the whole machine was busy (near all of them: the machine is what limits it)."""

    def __init__(self, service: Service | None):
        self._pid = service.pid if service else None
        self.cores: float | None = None
        self.busiest_thread: float | None = None
        self.machine_busy: float | None = None
        self.thread_kinds: dict[str, float] | None = None

    def __enter__(self) -> "CpuMeter":
        if self._pid is not None:
            tree, self._ticks = _process_tree(self._pid)
            self._threads = _thread_ticks(tree)
            self._machine = _machine_ticks()
            self._start = time.perf_counter()
        return self

    def __exit__(self, *_: object) -> None:
        if self._pid is not None:
            wall = time.perf_counter() - self._start
            busy, idle = (
                now - then for now, then in zip(_machine_ticks(), self._machine, strict=True)
            )
            tree, ticks = _process_tree(self._pid)
            threads = _thread_ticks(tree)
            self.cores = (ticks - self._ticks) / _TICKS / wall
            self.machine_busy = busy / (busy + idle) * (os.cpu_count() or 1)
            kinds: dict[str, float] = {}
            busiest = 0
            for tid, (kind, used) in threads.items():
                spent = used - self._threads.get(tid, (kind, 0))[1]
                busiest = max(busiest, spent)
                kinds[kind] = kinds.get(kind, 0) + spent / _TICKS / wall
            self.busiest_thread = busiest / _TICKS / wall
            self.thread_kinds = kinds


def wrk(
    url: str,
    headers: Mapping[str, str] | None = None,
    body: str = "",
    seconds: float = DURATION,
    connections: int = CONNECTIONS,
    server: Service | None = None,
    script: Path = LUA,
    env: Mapping[str, str] | None = None,
) -> Load:
    """`wrk -t1 -cN` against `url`, metering `server`'s CPU meanwhile."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script)]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    env = {
        **os.environ,
        "WRK_METHOD": "POST" if body else "GET",
        "WRK_BODY": body,
        **(env or {}),
    }
    with CpuMeter(server) as meter:
        out = subprocess.run(
            [*argv, url], capture_output=True, text=True, env=env, timeout=seconds + 30
        )
    return _load(_wrk_result(out.stdout, out.stderr), meter)


def _load(data: dict[str, int], meter: CpuMeter) -> Load:
    return Load(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["socket_errors"] + data["non_2xx"],
        cores=meter.cores,
        sent=data.get("sent", data["requests"]),
        busiest_thread=meter.busiest_thread,
        machine_busy=meter.machine_busy,
        thread_kinds=meter.thread_kinds,
    )


def _wrk_result(stdout: str, stderr: str) -> dict[str, int]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"wrk printed no result:\n{stdout}\n{stderr}")


async def probe(url: str, rate: float, seconds: float) -> tuple[float, int]:
    """Fixed-rate GETs (open loop); the p99 latency in ms and the number of failures."""
    latencies: list[float] = []
    failures = 0
    async with httpx.AsyncClient(timeout=10) as client:

        async def one() -> None:
            nonlocal failures
            start = time.perf_counter()
            try:
                response = await client.get(url)
                if response.status_code != 200:
                    failures += 1
            except httpx.HTTPError:
                failures += 1
            latencies.append((time.perf_counter() - start) * 1000)

        tasks = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            tasks.append(asyncio.create_task(one()))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)
    latencies.sort()
    return latencies[int(len(latencies) * 0.99) - 1], failures


def probe_under(
    load_url: str, body: str, probe_url: str, connections: int, seconds: float, server: Service
) -> tuple[Load, float]:
    """`wrk` POST load and a 20 req/s prober at once: the load, and the prober's p99 (ms)."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{round(seconds) + 2}s", "-s", str(LUA)]
    env = {**os.environ, "WRK_METHOD": "POST", "WRK_BODY": body}
    with CpuMeter(server) as meter:
        loader = subprocess.Popen([*argv, load_url], stdout=subprocess.PIPE, text=True, env=env)
        time.sleep(1)  # the prober starts once the flood is under way
        p99, failures = asyncio.run(probe(probe_url, 20, seconds))
        out, _ = loader.communicate(timeout=seconds + 30)
    return _load(_wrk_result(out, ""), meter), p99 if not failures else float("inf")


@dataclass
class Pairs:
    """Repeated side-by-side runs; pair i is ours[i] against peer[i], measured back to back."""

    ours: list[Load] = field(default_factory=list)
    peer: list[Load] = field(default_factory=list)

    def ratios(self, metric: str = "rps") -> list[float]:
        return [
            getattr(a, metric) / getattr(b, metric)
            for a, b in zip(self.ours, self.peer, strict=True)
        ]

    def median(self, side: str, metric: str = "rps") -> float:
        return statistics.median(getattr(run, metric) for run in getattr(self, side))

    def cores(self, side: str, metric: str = "cores") -> float | None:
        """Median cores used by `side`'s server (`busiest_thread`: by its busiest thread;
        `machine_busy`: by the whole machine while it ran)."""
        values = [getattr(run, metric) for run in getattr(self, side)]
        values = [value for value in values if value is not None]
        return statistics.median(values) if values else None

    def cpu_by_thread_kind(self, side: str) -> dict[str, float]:
        """Microseconds of CPU a request on each kind of `side`'s threads (median runs),
        biggest first."""
        runs = [(run.thread_kinds, run.rps) for run in getattr(self, side)]
        metered = [(kinds, rps) for kinds, rps in runs if kinds and rps]
        per_request = {
            kind: statistics.median(kinds.get(kind, 0.0) / rps * 1e6 for kinds, rps in metered)
            for kind in {kind for kinds, _ in metered for kind in kinds}
        }
        return dict(sorted(per_request.items(), key=lambda item: -item[1]))

    def errors(self) -> int:
        return sum(run.errors for run in [*self.ours, *self.peer])


def interleave(
    ours: Callable[[float], Load],
    peer: Callable[[float], Load],
    pairs: int = PAIRS,
    seconds: float = DURATION,
    warmup: float = WARMUP,
) -> Pairs:
    """A-B, B-A, A-B, ...: each side runs first as often as second (give or take one)."""
    if warmup:
        ours(warmup)
        peer(warmup)
    result = Pairs()
    for i in range(pairs):
        if i % 2 == 0:
            result.ours.append(ours(seconds))
            result.peer.append(peer(seconds))
        else:
            result.peer.append(peer(seconds))
            result.ours.append(ours(seconds))
    return result
