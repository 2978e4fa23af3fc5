"""Shared fixtures: real services or a loud skip (a failure under REQUIRE_SERVICES=1)."""

import os
from collections.abc import Iterator

import pytest
from django.db import connection

from tests.factories import StudyFactory  # noqa: F401 - re-exported for tests

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"


def need(what: str, available: bool) -> None:
    """Skip when a service is missing; fail instead under REQUIRE_SERVICES=1."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{what} is required (REQUIRE_SERVICES=1) but not available", pytrace=False)
    pytest.skip(f"{what} is not available")


def is_postgres() -> bool:
    return bool(connection.vendor == "postgresql")


@pytest.fixture
def postgres() -> None:
    need("PostgreSQL", is_postgres())


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL", "")
    need("Redis", bool(url))
    return url


@pytest.fixture
def chromium_path() -> str:
    path = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    need("Chromium", os.path.exists(path))
    return path


@pytest.fixture(autouse=True)
def _tasks_in_the_request(settings: pytest.FixtureRequest) -> Iterator[None]:  # type: ignore[misc]
    # The embedded mode's scoring thread (common.publish) would outlive a test's
    # transaction; tests score within the request, as eager Celery does. tests/test_embedded.py
    # runs the thread in a real server process.
    settings.EMBEDDED_TASKS_IN_THREAD = False  # type: ignore[attr-defined]
    yield


@pytest.fixture(autouse=True)
def _audit_head_file(
    settings: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:  # type: ignore[misc]
    # Each test's audit log starts empty: its head (kept outside the database) must too.
    settings.AUDIT_HEAD_FILE = str(tmp_path_factory.mktemp("audit") / "audit-head.json")  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _fast_hashing(settings: pytest.FixtureRequest) -> Iterator[None]:  # type: ignore[misc]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # type: ignore[attr-defined]
    yield
