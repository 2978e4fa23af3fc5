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
