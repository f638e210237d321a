"""In a real headless Chromium: the resource server's /docs logs in at the issuer and calls
/users/me (Swagger UI's Authorize button, password flow, CORS). Keeps a screenshot."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.e2e.browser import ARTIFACTS, needs_browser
from tests.e2e.stack import PASSWORD, Stack, running_stack

pytestmark = needs_browser


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
