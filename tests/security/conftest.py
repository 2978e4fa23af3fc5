"""Fixtures of the attack tests: every test starts with empty throttle counters."""

from collections.abc import Iterator

import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # The participant-miss, login and API-authentication counters live in the cache.
    cache.clear()
    yield
    cache.clear()


# The browser fixtures of tests/e2e (Debian Chromium through Playwright, a small study).
from tests.e2e.conftest import browser, robot, small_study  # noqa: E402, F401
