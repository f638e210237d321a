"""`make demo` tells the whole story and ends with the revoked key's token refused."""

import os
import subprocess
import sys

from servicekit.processes import ROOT


def test_demo_runs_the_story_end_to_end():
    # The operator's own settings stay out of the story (the scripts audit: an exported Redis
    # URL had the demo issuer write its counters there; another audience failed every token).
    operators = {"RS_AUDIENCE": "another-api", "ISSUER_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
        env={**os.environ, **operators},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("GET /users/me: HTTP 200") == 1
    both = out.split("Both tokens verify")[1].split("Revoke the old key")[0]
    assert both.count("HTTP 200") == 2
    after = out.split("Revoke the old key")[1]
    assert "old token: HTTP 401" in after and "new token: HTTP 200" in after
    assert "Done: services stopped" in out
