"""Every page that counts or lists sessions runs a fixed number of queries on 5,000 sessions.

One test builds the big study once (about 10 s) and pins the study list, the overview and
its JSON, the results page, the data-quality page and the sessions table. Each count
lists its queries; "session" and "user" are the login session and the user row that
every logged-in request loads.
"""

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from scoring.models import ModelFit, Score
from tests.dashboard.builders import member
from trials.models import Session, Study

pytestmark = [pytest.mark.django_db, pytest.mark.services]


def test_pages_run_a_fixed_number_of_queries_on_5000_sessions(
    big_study: Study, django_assert_num_queries: Callable[..., Any]
) -> None:
    n_completed = Session.objects.filter(participant__study=big_study, status="completed").count()
    n_scored = Score.objects.filter(session__participant__study=big_study).count()
    assert Session.objects.filter(participant__study=big_study).count() == 5000
    assert n_scored == n_completed > 4000

    owner = Client()
    owner.force_login(member(big_study, "owner", username="big-owner"))
    viewer = Client()
    viewer.force_login(member(big_study, "viewer", username="big-viewer"))

    # session, user, studies with the role, enrolled per study, completed and last
    # activity per study, scored per study.
    with django_assert_num_queries(6):
        response = owner.get("/dashboard/")
    row = response.context["rows"][0]
    assert (row.enrolled, row.completed, row.scored) == (2500, n_completed, n_scored)

    # session, user, study with role, arms, timepoints, session counts per arm x
    # timepoint, score and flag counts, withdrawn, in progress, and the visits
    # (trials.selectors.study_visits: timepoints, participants with arms, sessions).
    for url in ("/dashboard/s/big/", "/dashboard/s/big/overview.json", "/dashboard/s/big/quality/"):
        with django_assert_num_queries(12):
            response = owner.get(url)
        assert response.status_code == 200, url
    assert response.context["overview"].totals["enrolled"] == 5000

    # session, user, study with role, arms, timepoints, the scores (one row per
    # session, JSON keys cast to numbers in SQL), their count and latest scoring time
    # (what the stored model fit is compared with), the stored model fit, the MADRS totals
    # of the change analysis (no rating here, so its scores are not read).
    for client in (owner, viewer):
        with django_assert_num_queries(9):
            response = client.get("/dashboard/s/big/results/")
        assert response.status_code == 200
    results = response.context["results"]
    assert results.n_sessions == n_scored
    assert sum(g["n_sessions"] for g in results.groups) == n_scored
    assert sum(b["count"] for b in results.bias_bins) == n_scored
    assert response.context["chart_data"]["lr_points"] == []  # the viewer's copy

    # session, user, study with role, arms, timepoints (filter choices), the count, the
    # page of 50 rows with participant, arm, timepoint and current score joined.
    with django_assert_num_queries(7):
        response = owner.get("/dashboard/s/big/sessions/")
    assert response.context["page"].paginator.count == 5000
    assert len(response.context["page"].object_list) == 50
    with django_assert_num_queries(7):
        response = owner.get("/dashboard/s/big/sessions/?status=completed&flag=any&page=2")
    assert response.status_code == 200
    assert (
        response.context["page"].paginator.count
        == Score.objects.filter(session__participant__study=big_study).exclude(flags=[]).count()
    )
    assert not ModelFit.objects.exists()  # the results page never fits in the request
