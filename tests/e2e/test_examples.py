"""The README's example apps, run for real against the live issuer and resource server."""

import sys
from collections.abc import Iterator

import httpx
import pytest

from servicekit.processes import Process, free_port, run_script
from tests.e2e.sign_in import sign_in_like_a_browser
from tests.e2e.stack import Stack, running_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("examples")) as stack:
        yield stack


def test_the_python_web_app_signs_alice_in_and_calls_the_api(stack, tmp_path):
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    created = run_script(
        "create_client.py",
        "gallery",
        "--redirect-uri",
        f"{app_url}/callback",
        "--scope",
        "openid profile email",
        env=stack.env,
    )
    assert created.returncode == 0, created.stderr
    env = {
        **stack.env,
        "GALLERY_SECRET": created.stdout.splitlines()[-1],
        "ISSUER_URL": stack.issuer_url,
        "API_URL": stack.rs_url,
    }
    argv = [sys.executable, "-m", "uvicorn", "examples.python_web_app:app", "--port", str(port)]
    app = Process(argv, env, tmp_path / "app.log")
    try:
        app.wait_until_serving(f"{app_url}/")
        with httpx.Client() as browser:  # one cookie jar: the app's session and the issuer's
            login = browser.get(f"{app_url}/login")
            assert login.status_code == 302
            callback = sign_in_like_a_browser(login.headers["location"], client=browser)
            assert callback.startswith(f"{app_url}/callback?")
            assert browser.get(callback).is_redirect  # the app exchanged the code
            home = browser.get(f"{app_url}/")
            assert home.json()["signed_in_as"] == "alice"
            api = browser.get(f"{app_url}/api/me")
            assert api.status_code == 200 and api.json()["username"] == "alice"
    finally:
        app.stop()
