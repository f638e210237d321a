"""The compose file stays valid and runs the same commands as `make run`."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_passes_docker_compose_config():
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_compose_services_run_the_make_run_commands():
    compose = (ROOT / "docker-compose.yml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in ("scripts/generate_keys.py", "issuer.app:app", "resource_server.app:app"):
        assert command in compose and command in makefile
