"""Fixtures of the end-to-end tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.browser import start_browser


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A fresh headless Chromium (its own profile), quit after the test."""
    driver = start_browser(tmp_path / "profile")
    try:
        yield driver
    finally:
        driver.quit()
