"""Age and education from the demographics questionnaire as covariates of the group mixed
model (summary API), and the worker scoring a session's questionnaires with its task."""

from collections.abc import Callable
from typing import Any

import pytest

from instruments.models import InstrumentScore, ItemAnswer
from instruments.selectors import participant_covariates
from scoring.services import sessions_score
from tests.instruments.builders import fill_instruments
from tests.instruments.test_exports import _owner
from trials.models import Study

pytestmark = pytest.mark.django_db
URL = "/api/v1/studies/golden/summary/"


@pytest.fixture
def filled(golden: Study) -> Study:
    fill_instruments(golden)
    return golden


def test_the_selector_gives_age_and_education_per_participant(filled: Study) -> None:
    frame = participant_covariates(study_id=filled.pk)
    ids = sorted(filled.participants.values_list("id", flat=True))
    assert list(frame.index) == ids
    assert list(frame.columns) == ["age", "education_years"]
    assert frame["age"].tolist() == [18.0 + (7 * p * p) % 50 for p in ids]
    assert frame["education_years"].tolist() == [10.0 + p % 7 for p in ids]


def test_the_summary_fits_with_the_covariates_asked_for(
    filled: Study, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    client = _owner(filled)
    # The first summary queues the study's group fit (run in-process here); every
    # combination of the covariates is part of it, so no request fits a model.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.get(URL)
    assert len(callbacks) == 1
    plain = client.get(URL).json()["mixed_model"]
    with_covariates = client.get(f"{URL}?covariates=age,education_years").json()["mixed_model"]
    assert "age" not in plain["formula"]
    assert " + age + education_years" in with_covariates["formula"]
    assert with_covariates["reason"] == "", with_covariates["reason"]
    terms = [c["term"] for c in with_covariates["coefficients"]]
    assert "age" in terms and "education_years" in terms
    age = client.get(f"{URL}?covariates=age").json()["mixed_model"]
    assert age["formula"].endswith("+ ee + age + (1 | participant)")
    bad = client.get(f"{URL}?covariates=income")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {"covariates": ["Any of: age, education_years."]}


def test_sessions_score_scores_the_questionnaires_too(filled: Study) -> None:
    InstrumentScore.objects.all().delete()
    session = filled.participants.order_by("id").first().sessions.order_by("id").first()  # type: ignore[union-attr]
    assert session is not None
    ItemAnswer.objects.filter(session=session, item="phq9_1").update(value=3)
    # Every item answered, so the total is the plain sum (prorating is tested elsewhere).
    ItemAnswer.objects.filter(session=session, instrument__code="phq9", value__isnull=True).update(
        value=1
    )
    sessions_score(session_ids=[session.pk])
    # Self-report instruments only: the clinician's MADRS is scored on entry.
    scores = dict(
        InstrumentScore.objects.filter(session=session).values_list("instrument__code", "total")
    )
    answers = dict(
        ItemAnswer.objects.filter(session=session, instrument__code="phq9").values_list(
            "item", "value"
        )
    )
    assert scores["phq9"] == float(sum(v for v in answers.values() if v is not None))
    assert set(scores) == {"phq9", "lotr", "madrs"}


def test_the_summary_gives_the_change_analysis(filled: Study) -> None:
    from tests.api.conftest import make_researchers
    from tests.factories import make_study

    staff = make_researchers(filled, make_study(slug="other-study", n_events=4))
    body = staff.client("analyst").get(f"{URL}?model=false").json()["change"]
    assert body["outcome"] == "madrs"
    assert body["measures"][:3] == ["m1_lr_good", "update_good", "update_bias"]
    # Two arms x one later timepoint x each measure; 2 participants per arm.
    assert {(c["arm"], c["timepoint"]) for c in body["correlations"]} == {
        ("patients", "+4h"),
        ("controls", "+4h"),
    }
    assert all(c["n"] == 2 for c in body["correlations"])
    assert all(c["pearson_ci_low"] is None for c in body["correlations"])  # n < 4
    assert len(body["points"]) == 4
    point = body["points"][0]
    from instruments.models import InstrumentScore

    first = InstrumentScore.objects.get(
        session__participant_id=point["participant"],
        session__timepoint__order=0,
        instrument__code="madrs",
    )
    later = InstrumentScore.objects.get(
        session__participant_id=point["participant"],
        session__timepoint__order=1,
        instrument__code="madrs",
    )
    assert point["d_madrs"] == later.total - first.total  # type: ignore[operator]
    viewer = staff.client("viewer").get(f"{URL}?model=false").json()["change"]
    assert "points" not in viewer
    assert viewer["correlations"] == body["correlations"]
