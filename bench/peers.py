"""The Node peers of bench/peers/ (oidc-provider, jose), started beside our services."""

import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from servers import Service

from servicekit.processes import ROOT, Process, free_port

PEERS = ROOT / "bench" / "peers"
# Issued by issuer.mjs to its one client (see bench/peers/README.md).
CLIENT_ID = "bench"
CLIENT_SECRET = "bench-secret-bench-secret-bench-secret"
MIN_NODE = 20  # jose 6 and oidc-provider 9 need Node 20 or newer


def _executable(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        sys.exit(f"{name} is missing: apt-get install {package} (make bench does this)")
    return path


def node_version() -> str:
    node = _executable("node", "nodejs npm")
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def prepare() -> None:
    """Check Node and install the pinned packages (`npm ci`) when they are missing."""
    version = node_version()
    match = re.match(r"v(\d+)\.", version)
    if not match or int(match[1]) < MIN_NODE:
        sys.exit(f"node {version} is too old for bench/peers: Node {MIN_NODE} or newer is needed")
    if not (PEERS / "node_modules").is_dir():
        npm = _executable("npm", "npm")
        print("bench/peers: npm ci", flush=True)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEERS, check=True)


@contextlib.contextmanager
def _node(name: str, script: str, *args: str, health: str) -> Iterator[Service]:
    port = free_port()
    log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
    process = Process(["node", str(PEERS / script), "--port", str(port), *args], {}, log)
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_until_serving(url + health)
        yield Service(name, url, process.popen.pid)
    finally:
        process.stop()
        log.unlink(missing_ok=True)


def oidc_provider() -> contextlib.AbstractContextManager[Service]:
    """issuer.mjs: oidc-provider issuing RS256 `at+jwt` tokens; its JWKS is at /jwks."""
    return _node("oidc-provider", "issuer.mjs", health="/jwks")


def jose_rs(
    issuer: str, jwks_url: str, audience: str
) -> contextlib.AbstractContextManager[Service]:
    """rs.mjs: node:http + jose verifying `issuer`'s tokens (iss, aud, `typ: at+jwt`, RS256)."""
    args = ("--issuer", issuer, "--audience", audience, "--jwks-url", jwks_url)
    return _node("jose", "rs.mjs", *args, health="/healthz")
