"""A real headless Chromium for the browser tests (Debian's chromium and chromedriver,
driven by Selenium), and what they read off a page."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def chromedriver() -> str:
    path = shutil.which("chromedriver")
    if not path or not shutil.which("chromium"):
        pytest.skip(
            "no chromium/chromedriver here (make test installs Debian's when it runs as root)"
        )
    return path


def browsers(profiles: Path) -> Iterator[Callable]:
    """Yields a maker of browsers (each with a profile of its own); quits them all after."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = chromedriver()
    made = []

    def make():
        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profiles / f'profile{len(made)}'}",
        ):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(driver_path), options=options)
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.quit()


def status(driver) -> str:
    """The page's connection status line (live, refused: ..., reconnecting)."""
    return driver.find_element("id", "status").text


def rows_of(driver, selector: str) -> list[list[str]]:
    """The cells of the rows `selector` finds (rows of headers only: none)."""
    return [
        r
        for r in driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(tr => [...tr.querySelectorAll('td')].map(td => td.textContent))",
            selector,
        )
        if r
    ]
