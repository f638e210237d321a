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

from servicekit.processes import granian, started, uvicorn

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


@contextlib.contextmanager
def serving(
    app: str,
    env: Mapping[str, str],
    port: int | None = None,
    health: str = "/healthz",
    workers: int = 1,
) -> Iterator[Service]:
    """Run `app` under BENCH_SERVER until the block ends; yields it once `health` answers."""
    server = granian if SERVER == "granian" else uvicorn
    log = Path(tempfile.mkstemp(prefix="bench-service-", suffix=".log")[1])
    try:
        with started(app, env, port, log, health, workers, server) as (url, process):
            yield Service(app, url, process.popen.pid)
    finally:
        log.unlink(missing_ok=True)
