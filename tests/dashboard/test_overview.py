"""The study list and the live overview: exact counts, the JSON the page polls, and a
fixed number of queries on 5,000 sessions."""

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dashboard.services import participant_withdraw
from scoring.models import Score
from tests.dashboard.builders import enrol_and_complete, next_session
from trials.models import Session, Study
from trials.services.enrolment import study_enrol
from trials.services.responses import response_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def scenario(study: Study, users: dict[str, User]) -> dict[str, Session]:
    """Baseline: A (patients) completed and started T1; B (controls) completed, flagged,
    its T1 window opening today; C (patients) in progress; D (controls) abandoned;
    E (controls) completed then withdrawn."""
    Study.objects.filter(pk=study.pk).update(min_valid_per_valence=2)
    study.refresh_from_db()
    a = enrol_and_complete(study, external_id="A", arm="patients")
    t1 = next_session(a)
    # Every E2 moves away from the base rate: flagged many_away.
    b = enrol_and_complete(study, external_id="B", arm="controls", good_shift=-5, bad_shift=-5)
    c = study_enrol(study=study, external_id="C", arm_code="patients").session
    for phase, value in (("e1", 40), ("br", None)):
        step_code = c.plan["practice"][0][1]
        recorded = response_record(
            token=c.token,
            client_id=uuid.uuid4(),
            event=step_code,
            phase=phase,
            value=value if value is not None else 50,
            rt_ms=2000,
            onset_at=None,
        )
        assert recorded.created
    d = study_enrol(study=study, external_id="D", arm_code="controls").session
    Session.objects.filter(pk=d.pk).update(status=Session.Status.ABANDONED)
    e = enrol_and_complete(study, external_id="E", arm="controls")
    participant_withdraw(study=study, participant_id=e.participant_id, actor=users["owner"])
    day_start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    # B's +4 h window (4-12 h after baseline) is open now: due today.
    Session.objects.filter(pk=b.pk).update(completed_at=timezone.now() - timedelta(hours=5))
    # A's T1 window (4-12 h after baseline) closed yesterday: A is not due today.
    Session.objects.filter(pk=a.pk).update(completed_at=day_start - timedelta(days=2))
    return {"A": a, "A1": t1, "B": b, "C": c, "D": d, "E": e}


def test_study_list_shows_only_member_studies_with_their_counts(
    client_as: Callable[[str], Client], scenario: dict[str, Session]
) -> None:
    response = client_as("viewer").get("/dashboard/")
    rows = response.context["rows"]
    assert [(r.study.slug, r.role, r.enrolled, r.completed, r.scored) for r in rows] == [
        ("small", "viewer", 4, 2, 2)
    ]
    assert rows[0].last_activity is not None
    body = response.content.decode()
    assert 'data-study="small"' in body and 'data-study="other"' not in body
    assert client_as("outsider").get("/dashboard/").context["rows"][0].study.slug == "other"


def test_funnel_per_arm_and_timepoint(
    client_as: Callable[[str], Client], scenario: dict[str, Session]
) -> None:
    data = client_as("analyst").get("/dashboard/s/small/overview.json").json()
    funnel = {
        (r["key"]): (
            r["enrolled"],
            r["started"],
            r["completed"],
            r["abandoned"],
            r["scored"],
            r["flagged"],
        )
        for r in data["rows"]
    }
    a, b = scenario["A"], scenario["B"]
    patients, controls = a.participant.arm_id, b.participant.arm_id
    baseline, t1 = a.timepoint_id, scenario["A1"].timepoint_id
    assert funnel == {
        # Both completed sessions have 4 events: flagged too_few_for_models.
        f"{patients}-{baseline}": (2, 2, 1, 0, 1, 1),
        f"{controls}-{baseline}": (2, 1, 1, 1, 1, 1),
        f"{patients}-{t1}": (1, 0, 0, 0, 0, 0),
        f"{controls}-{t1}": (0, 0, 0, 0, 0, 0),
    }
    assert data["totals"] == {
        "enrolled": 5,
        "started": 3,
        "completed": 2,
        "abandoned": 1,
        "scored": 2,
        "flagged": 2,
        "in_progress": 1,
        "failed": 0,
    }
    assert data["withdrawn"] == 1
    assert data["flag_totals"]["many_away"] == 1
    assert data["flag_totals"]["too_few_for_models"] == 2
    assert sum(data["flag_totals"].values()) == 3
    # Sessions in progress, with their progress through the plan.
    c = scenario["C"]
    assert [(r["participant"], r["timepoint"], r["steps"]) for r in data["in_progress"]] == [
        (f"P{c.participant_id}", "baseline", "2/14")
    ]
    # B's +4 h window opens at 01:00 today (completed at 21:00 yesterday), closes 09:00.
    assert [(r["participant"], r["timepoint"]) for r in data["opening_today"]] == [
        (f"P{b.participant_id}", "T1")
    ]
    assert data["opening_count"] == 1


def test_the_json_follows_new_data_without_a_reload(
    client_as: Callable[[str], Client], scenario: dict[str, Session], study: Study
) -> None:
    client = client_as("viewer")
    before = client.get("/dashboard/s/small/overview.json").json()
    enrol_and_complete(study, external_id="F", arm="patients")
    after = client.get("/dashboard/s/small/overview.json").json()
    assert after["totals"]["completed"] == before["totals"]["completed"] + 1
    assert after["totals"]["scored"] == before["totals"]["scored"] + 1
    assert client.get("/dashboard/s/small/overview.json")["Cache-Control"] == "no-store"


def test_the_overview_page_renders_the_same_numbers(
    client_as: Callable[[str], Client], scenario: dict[str, Session]
) -> None:
    response = client_as("owner").get("/dashboard/s/small/")
    body = response.content.decode()
    a = scenario["A"]
    cell = f'data-cell="{a.participant.arm_id}-{a.timepoint_id}:enrolled">2<'
    assert cell in body
    assert 'data-total="flagged">2<' in body
    assert 'id="overview-live"' in body and "/dashboard/s/small/overview.json" in body
    assert "<script>" not in body and " onclick=" not in body


def test_quality_page_counts_the_flags(
    client_as: Callable[[str], Client], scenario: dict[str, Session]
) -> None:
    response = client_as("analyst").get("/dashboard/s/small/quality/")
    overview = response.context["overview"]
    assert overview.flag_totals["many_away"] == 1
    assert overview.totals["flagged"] == 2
    b = scenario["B"]
    link = f"?arm={b.participant.arm_id}&amp;timepoint={b.timepoint_id}&amp;flag=many_away"
    assert link in response.content.decode()


def test_a_failed_score_is_counted(
    client_as: Callable[[str], Client], scenario: dict[str, Session]
) -> None:
    Score.objects.filter(session=scenario["A"]).update(status=Score.Status.FAILED, reason="boom")
    data = client_as("viewer").get("/dashboard/s/small/overview.json").json()
    assert (data["totals"]["scored"], data["totals"]["failed"]) == (1, 1)
