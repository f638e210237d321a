"""`make demo` tells the whole story and ends with the revoked key's token refused."""

import subprocess
import sys

from servicekit.processes import ROOT


def test_demo_runs_the_story_end_to_end():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")],
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
