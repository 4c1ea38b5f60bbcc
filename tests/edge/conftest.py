"""Fixtures of the edge tier that several of its files share."""

from __future__ import annotations

import pytest

from tests.support.browser import browsers


@pytest.fixture
def browser_factory(tmp_path):
    """Headless Chromium browsers, made on demand, quit after the test."""
    yield from browsers(tmp_path)
