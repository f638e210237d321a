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
