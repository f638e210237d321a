"""In a real headless Chromium: the resource server's /docs signs in on the issuer's page and
calls /users/me (Swagger UI's Authorize button: authorization code with PKCE, a popup, the
code exchanged over CORS). Keeps a screenshot."""

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
    docs = browser.current_window_handle
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "button.authorize"))).click()
    # The dialog knows the client (api-docs) and the scopes; Authorize opens the issuer's page.
    wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, ".auth-btn-wrapper button.authorize"))
    ).click()
    wait.until(lambda driver: len(driver.window_handles) == 2)
    browser.switch_to.window(next(h for h in browser.window_handles if h != docs))
    wait.until(ec.visibility_of_element_located((By.ID, "username"))).send_keys("alice")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    # The popup lands on /docs/oauth2-redirect, hands the code to Swagger UI and closes.
    wait.until(lambda driver: len(driver.window_handles) == 1)
    browser.switch_to.window(docs)
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
