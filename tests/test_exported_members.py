"""The verifier's public surface, pinned: third parties import these names."""

import resource_server


def test_public_surface_is_pinned():
    assert sorted(resource_server.__all__) == [
        "AUTH_ERROR_HANDLERS",
        "AuthError",
        "BearerClaims",
        "CachePolicy",
        "Claims",
        "InsufficientScope",
        "InvalidRequest",
        "InvalidToken",
        "KeySetUnavailable",
        "RemoteKeySet",
        "Verifier",
        "bearer_lifespan",
        "require_scopes",
    ]
    for name in resource_server.__all__:
        assert getattr(resource_server, name) is not None


def test_resource_server_never_imports_the_issuer():
    import ast
    from pathlib import Path

    for path in Path(resource_server.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.split(".")[0] == "issuer" for name in names), path


def test_the_documented_own_lifespan_type_checks(tmp_path, monkeypatch):
    """docs/verifier.md: with a lifespan of your own, `async with verifier.key_set`, and
    `verifier.key_set.status()` for readiness. The observability audit: both were mypy errors
    in a third party's app ("KeySource" has no attribute "__aenter__" / "status"), as
    `Verifier.key_set` was typed as the protocol, not the `RemoteKeySet` `for_issuer` makes."""
    from pathlib import Path

    from mypy import api

    app = tmp_path / "third_party_app.py"
    app.write_text(
        "import contextlib\n"
        "from collections.abc import AsyncIterator\n"
        "from typing import Any\n\n"
        "from fastapi import FastAPI\n\n"
        "from resource_server import AUTH_ERROR_HANDLERS, BearerClaims, Verifier\n\n"
        'verifier = Verifier.for_issuer("https://auth.example.com", audience="api")\n\n\n'
        "@contextlib.asynccontextmanager\n"
        "async def lifespan(_: FastAPI) -> AsyncIterator[dict[str, Any]]:\n"
        "    async with verifier.key_set:\n"
        '        yield {"verifier": verifier}\n\n\n'
        "app = FastAPI(lifespan=lifespan, exception_handlers=AUTH_ERROR_HANDLERS)\n\n\n"
        '@app.get("/orders")\n'
        "async def orders(claims: BearerClaims) -> dict[str, str]:\n"
        '    return {"owner": claims.sub}\n\n\n'
        "def ready() -> bool:\n"
        "    return verifier.key_set.status().usable\n"
    )
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n")
    monkeypatch.setenv("MYPYPATH", str(Path(resource_server.__file__).parent.parent))
    monkeypatch.chdir(tmp_path)
    out, err, status = api.run(
        [str(app), "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache")]
    )
    assert status == 0, out + err
