"""In a real headless Chromium: the resource server's /docs logs in at the issuer and calls
/users/me (Swagger UI's Authorize button, password flow, CORS). Keeps a screenshot."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from servicekit.processes import ROOT
from tests.e2e.stack import PASSWORD, Stack, running_stack

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "test-artifacts"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER),
        reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1400",
        f"--user-data-dir={tmp_path / 'profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path) as stack:
        yield stack


def test_swagger_authorize_then_users_me(stack: Stack, browser: WebDriver):
    wait = WebDriverWait(browser, 20)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{stack.rs_url}/docs")
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    wait.until(ec.visibility_of_element_located((By.ID, "oauth_username"))).send_keys("alice")
    browser.find_element(By.ID, "oauth_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize").click()
    # Logged in: the dialog offers "Logout" once the issuer answered with a token.
    wait.until(ec.presence_of_element_located((By.XPATH, "//button[normalize-space()='Logout']")))
    browser.find_element(By.CSS_SELECTOR, "button.btn-done").click()

    browser.find_element(By.CSS_SELECTOR, "#operations-default-users_me_users_me_get").click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.try-out__btn"))).click()
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.execute"))).click()
    status = wait.until(
        ec.visibility_of_element_located(
            (By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
        )
    )
    body = browser.find_element(
        By.CSS_SELECTOR, ".live-responses-table .response-col_description pre"
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "swagger-users-me.png"))
    assert status.text.strip() == "200"
    assert '"username": "alice"' in body.text
