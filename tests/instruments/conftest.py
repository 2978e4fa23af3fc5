"""Fixtures of the instrument tests: the golden study with the shipped instruments attached."""

from typing import Any

import pytest

from instruments.services import instrument_attach, instruments_load_shipped
from tests.api.conftest import Researchers, golden, make_researchers, researchers  # noqa: F401
from tests.e2e.conftest import browser  # noqa: F401
from tests.factories import make_study
from trials.models import Study


def attach_shipped(study: Study) -> None:
    """demographics before the task at the first visit, PHQ-9 and LOT-R after it at each,
    MADRS (clinician-rated) at each."""
    shipped = {i.code: i for i in instruments_load_shipped()}
    timepoints = list(study.timepoints.order_by("order"))
    instrument_attach(
        study=study, timepoint=timepoints[0], instrument=shipped["demographics"], position="before"
    )
    for timepoint in timepoints:
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["phq9"], order=0)
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["lotr"], order=1)
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["madrs"])


@pytest.fixture
def attached(golden: Study) -> Study:  # noqa: F811
    attach_shipped(golden)
    return golden


@pytest.fixture
def staff(attached: Study, db: Any) -> Researchers:
    other = make_study(slug="other-study", n_events=4)
    return make_researchers(attached, other)
