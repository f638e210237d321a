"""Our Python services for the benchmark, started by one function so the server can be swapped.

BENCH_SERVER picks it: `granian` (default), started as the Dockerfile and docker-compose.yml
run the services in production (`servicekit.processes.granian`); or `uvicorn`, started exactly
as `make run` and the end-to-end tests start it.
"""

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from servicekit.processes import Process, free_port, granian, uvicorn

SERVER = os.environ.get("BENCH_SERVER", "granian")
SERVERS = ("granian", "uvicorn")


@dataclass(frozen=True)
class Service:
    """A running server: where to send requests, and the process whose CPU time is measured."""

    name: str
    url: str
    pid: int


def check_server() -> None:
    """Fail before anything starts if BENCH_SERVER cannot be run."""
    if SERVER not in SERVERS:
        sys.exit(f"BENCH_SERVER={SERVER!r}: expected one of {', '.join(SERVERS)}")
    if importlib.util.find_spec(SERVER) is None:
        sys.exit(
            f"BENCH_SERVER={SERVER} but {SERVER} is not installed in this virtualenv "
            f"({sys.executable}); install it (e.g. `{sys.executable} -m pip install {SERVER}`) "
            "or unset BENCH_SERVER"
        )


def start_server(app: str, port: int, env: Mapping[str, str], log: Path, workers: int) -> Process:
    """The one place the server command for our services is chosen."""
    if SERVER == "granian":
        return granian(app, port, env, log, workers=workers)
    return uvicorn(app, port, env, log, workers=workers)


@contextlib.contextmanager
def serving(
    app: str,
    env: Mapping[str, str],
    port: int | None = None,
    health: str = "/healthz",
    workers: int = 1,
) -> Iterator[Service]:
    """Run `app` until the block ends; yields it once `health` answers."""
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="bench-service-", suffix=".log")[1])
    process = start_server(app, port, env, log, workers)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_until_serving(url + health)
        yield Service(app, url, process.popen.pid)
    finally:
        process.stop()
        log.unlink(missing_ok=True)
