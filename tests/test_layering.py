"""The layering, pinned: web -> sign-in (oidc) -> protocol (oauth) -> domain (accounts, keys,
limits) -> storage.

The composition root (`issuer.app`, `issuer.services`, `issuer.admin`) builds; routes in `web`
receive the services `issuer.services` built, and nothing below `web` reaches up into it;
`servicekit` is shared plumbing that imports neither service; the verifier library in
`resource_server` imports no issuer code, so a third party can install it alone.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("issuer", "resource_server", "servicekit")
COMPOSITION_ROOT = {
    "issuer.app",
    "issuer.services",
    "issuer.builders",
    "issuer.admin",
    "issuer.models",
}
# What each room may import besides itself (prefixes).
ALLOWED = {
    "issuer.storage": (),
    "issuer.accounts": ("issuer.storage",),
    "issuer.keys": ("issuer.storage",),
    "issuer.limits": ("issuer.storage",),
    "issuer.metrics": ("issuer.keys", "servicekit"),
    # ISSUER_URL is checked by the rule the verifier holds an issuer identifier to.
    "issuer.settings": ("resource_server",),
    "issuer.oauth": (
        "issuer.accounts",
        "issuer.keys",
        "issuer.limits",
        "issuer.storage",
        "issuer.metrics",
        "resource_server",
    ),
    "issuer.oidc": (
        "issuer.oauth",
        "issuer.accounts",
        "issuer.keys",
        "issuer.limits",
        "issuer.storage",
        "issuer.metrics",
        "resource_server",
    ),
    "issuer.web": ("issuer.", "resource_server", "servicekit"),  # all below, services, plumbing
    "servicekit": (),
}
VERIFIER_LIBRARY = {
    "resource_server.base64url",
    "resource_server.deps",
    "resource_server.errors",
    "resource_server.jwks",
    "resource_server.settings",
    "resource_server.stats",
    "resource_server.token_cache",
    "resource_server.urls",
    "resource_server.verify",
}


def modules() -> dict[str, set[str]]:
    """Every module of our packages and the modules of our packages it imports."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            name = name.removesuffix(".__init__")
            imported: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    imported |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module:
                    imported.add(node.module)
                    imported |= {f"{node.module}.{alias.name}" for alias in node.names}
            graph[name] = {m for m in imported if m.split(".")[0] in PACKAGES}
    known = set(graph)
    return {name: {m for m in deps if m in known and m != name} for name, deps in graph.items()}


GRAPH = modules()


def room_of(module: str) -> str | None:
    return next((room for room in ALLOWED if module == room or module.startswith(room + ".")), None)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if room_of(m)))
def test_each_room_imports_only_what_lies_below_it(module):
    room = room_of(module)
    assert room is not None
    for target in GRAPH[module]:
        if target == room or target.startswith(room + "."):
            continue
        reaches_up = target in COMPOSITION_ROOT and (
            room != "issuer.web" or target != "issuer.services"
        )
        assert not reaches_up, f"{module} reaches up into {target}"
        assert any(target.startswith(allowed) for allowed in ALLOWED[room]), (
            f"{module} ({room}) must not import {target}"
        )


def test_the_verifier_library_imports_no_issuer_and_no_service_plumbing():
    for module in VERIFIER_LIBRARY:
        assert not {t for t in GRAPH[module] if not t.startswith("resource_server")}, module


def test_there_is_no_import_cycle():
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in GRAPH[module]:
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])


def test_the_scripts_configuration_loads_without_the_web_stack():
    # Every script reads Settings; FastAPI and httpx were half of a script's start-up time.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, issuer.settings, resource_server.urls;"
            "print(' '.join(m for m in ('fastapi', 'starlette', 'httpx') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout.split()
    assert loaded == []
