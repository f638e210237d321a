"""The README's example apps, run for real against the live issuer and resource server."""

import contextlib
import functools
import http.server
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from servicekit.processes import ROOT, Process, free_port, run_script
from tests.e2e.browser import CHROMEDRIVER, CHROMIUM
from tests.e2e.sign_in import sign_in_like_a_browser
from tests.e2e.stack import PASSWORD, Stack, running_stack

BROWSER_APP_PORT = free_port()
BROWSER_APP_ORIGIN = f"http://127.0.0.1:{BROWSER_APP_PORT}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The browser app's origin may call the issuer and the resource server (CORS).
    origins = json.dumps([BROWSER_APP_ORIGIN])
    with running_stack(
        tmp_path_factory.mktemp("examples"), ISSUER_CORS_ORIGINS=origins, RS_CORS_ORIGINS=origins
    ) as stack:
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
            early = browser.get(f"{app_url}/api/me")  # before signing in: to the sign-in
            assert early.status_code == 303 and early.headers["location"] == "/login"
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


@contextlib.contextmanager
def serving_directory(directory: Path, port: int) -> Iterator[None]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium is not installed")
def test_the_browser_app_signs_alice_in_and_calls_both_apis(stack, tmp_path, browser):
    page = (ROOT / "examples" / "browser_app.html").read_text()
    # The example names the services' default addresses; here they run on free ports.
    page = page.replace("http://127.0.0.1:8000", stack.issuer_url)
    page = page.replace("http://127.0.0.1:8001", stack.rs_url)
    (tmp_path / "browser_app.html").write_text(page)
    app_url = f"{BROWSER_APP_ORIGIN}/browser_app.html"
    registered = run_script(
        "create_client.py", "spa", "--public", "--scope", "openid profile",
        "--redirect-uri", app_url, env=stack.env,
    )  # fmt: skip
    assert registered.returncode == 0, registered.stderr
    wait = WebDriverWait(browser, 20)
    with serving_directory(tmp_path, BROWSER_APP_PORT):
        browser.get(app_url)
        wait.until(ec.element_to_be_clickable((By.ID, "sign-in"))).click()
        wait.until(ec.visibility_of_element_located((By.ID, "username"))).send_keys("alice")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda driver: driver.find_element(By.ID, "out").text.strip())
        result = json.loads(browser.find_element(By.ID, "out").text)
        assert browser.current_url == app_url  # the code left the address bar
    assert result["me"]["username"] == "alice"
    assert result["userinfo"]["preferred_username"] == "alice"
