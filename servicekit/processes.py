"""The services as child processes on free loopback ports, always stopped by whoever started
them: `make demo`, `make bench` and the end-to-end tests all start them through here.

The scripts are found beside the packages (a source checkout or editable install).
"""

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import httpx

ROOT = Path(__file__).resolve().parents[1]


# Below the kernels' ephemeral ranges (Linux 32768-60999, BSDs 49152-65535): a port that
# bind(0) hands out comes from that range, and any outgoing connection may take it as its
# source port before the server started on it binds it ("address already in use").
_LISTENING_PORTS = range(20000, 32768)


def free_port() -> int:
    """A loopback port nothing listens on, outside the ephemeral range."""
    for _ in range(100):
        port = random.choice(_LISTENING_PORTS)  # noqa: S311 (a port, not a secret)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {_LISTENING_PORTS} after 100 tries")


def run_script(
    name: str,
    *args: str,
    env: Mapping[str, str],
    stdin: str = "",
    timeout: float = 60,
    prefix: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """`python scripts/<name> args...` with `env` added to this process's environment, run
    under `prefix` (a command such as `setpriv ...`) when one is given."""
    return subprocess.run(
        [*prefix, sys.executable, str(ROOT / "scripts" / name), *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


class Process:
    """A child process in its own process group (so everything it starts can be stopped)."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log: Path):
        self.log = log
        self._log_file = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv),
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_serving(self, url: str, timeout: float = 30, ready_only: bool = False) -> None:
        """Poll `url` until it answers (200 only with `ready_only`); raise with the log if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{url} exited early:\n{self.log.read_text()}")
            try:
                status = httpx.get(url, timeout=1).status_code
                if status == 200 or (status < 500 and not ready_only):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{url} did not come up:\n{self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log_file.close()


def uvicorn(
    app: str,
    port: int,
    env: Mapping[str, str],
    log: Path,
    access_log: bool = False,
    workers: int = 1,
) -> Process:
    """`uvicorn app` on 127.0.0.1:`port`, as `make run` starts the services."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--no-proxy-headers"]
    argv += ["--log-level", "info"] if access_log else ["--log-level", "warning", "--no-access-log"]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return Process(argv, env, log)


# Granian: the production server (Dockerfile, docker-compose.yml, docs/operations.md). It
# never rewrites the client's address from forwarding headers (it has no such option on),
# so client addresses stay with ISSUER_TRUSTED_PROXIES as under uvicorn --no-proxy-headers.
GRANIAN_OPTIONS = ("--interface", "asgi", "--loop", "uvloop", "--http", "1", "--no-ws")


def granian(app: str, port: int, env: Mapping[str, str], log: Path, workers: int = 1) -> Process:
    """`granian app` on 127.0.0.1:`port`, with the production options."""
    argv = [sys.executable, "-m", "granian", *GRANIAN_OPTIONS, "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--log-level", "warning", app]
    return Process(argv, env, log)


class Server(Protocol):
    """Starts an app on a port: `uvicorn` (as `make run`) or `granian` (as in production)."""

    def __call__(
        self, app: str, port: int, env: Mapping[str, str], log: Path, *, workers: int
    ) -> Process: ...


@contextlib.contextmanager
def started(
    app: str,
    env: Mapping[str, str],
    port: int | None = None,
    log: Path | None = None,
    health: str = "/healthz",
    workers: int = 1,
    server: Server = uvicorn,
) -> Iterator[tuple[str, Process]]:
    """Run `app` under `server` until the block ends; yields its base URL and its process
    once `health` answers."""
    port = port or free_port()
    if log is None:
        handle, name = tempfile.mkstemp(prefix="service-", suffix=".log")
        os.close(handle)  # the server opens it by name
        log = Path(name)
    process = server(app, port, env, log, workers=workers)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_until_serving(url + health)
        yield url, process
    finally:
        process.stop()
