"""Fixtures of the dashboard tests: a small real study with its members, and a big one."""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.dashboard.builders import bulk_study, member
from tests.factories import make_study
from trials.models import Study


@pytest.fixture
def study(db: None) -> Study:
    """Open, two arms, two timepoints, two lists of 4 events (base rates 20-50) + 1 practice."""
    return make_study(slug="small", title="Small study")


@pytest.fixture
def users(study: Study) -> dict[str, User]:
    """owner, analyst and viewer of `study`, and an outsider who belongs to another study."""
    other = make_study(slug="other", title="Other study")
    return {
        "owner": member(study, "owner"),
        "analyst": member(study, "analyst"),
        "viewer": member(study, "viewer"),
        "outsider": member(other, "owner", username="outsider"),
    }


@pytest.fixture
def client_as(users: dict[str, User]) -> Callable[[str], Client]:
    def make(role: str) -> Client:
        client = Client()
        client.force_login(users[role])
        return client

    return make


@pytest.fixture
def big_study(db: None, postgres: None) -> Study:
    """5,000 sessions (2,500 participants x 2 timepoints), ~4,300 scored (10 s to build)."""
    return bulk_study(n_sessions=5000)
