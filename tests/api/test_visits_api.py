"""Researchers' visits (issue 10 items 2-5): the staff anchor API and the visits export."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import token_create
from audit.models import AuditEntry
from tests.dashboard.builders import member
from tests.factories import make_study
from trials.models import Participant, Session, Study, Timepoint
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.usefixtures("postgres"), pytest.mark.django_db]

H = timedelta(hours=1)
COLUMNS = [
    "study",
    "participant",
    "arm",
    "timepoint",
    "status",
    "anchor",
    "opens_at",
    "closes_at",
    "completed_at",
    "reminders_sent",
    "anchor_type",
]


@pytest.fixture
def study() -> Study:
    """baseline; h4 4-16 h after the staff time; d7 7-8 days after the first visit."""
    study = make_study(slug="clinic", n_events=1, n_practice=0, n_timepoints=3)
    Timepoint.objects.filter(study=study, order=1).update(
        label="h4", anchor="staff", opens_after=4 * H, closes_after=16 * H
    )
    Timepoint.objects.filter(study=study, order=2).update(
        label="d7", anchor="first", opens_after=timedelta(days=7), closes_after=timedelta(days=8)
    )
    return study


def client_for(study: Study, role: str, scope: str = "write") -> APIClient:
    user: User = member(study, role, username=f"{study.slug}-{role}-{scope}")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_create(user=user, scope=scope).key}")
    return client


def done_baseline(study: Study, hours_ago: float = 2) -> Participant:
    enrolment = study_enrol(study=study)
    Session.objects.filter(pk=enrolment.session.pk).update(
        status="completed", completed_at=timezone.now() - timedelta(hours=hours_ago), step_index=2
    )
    return enrolment.participant


def anchor(client: APIClient, study: Study, participant: Participant, at: object) -> object:
    return client.post(
        f"/api/v1/studies/{study.slug}/participants/{participant.pk}/anchor",
        {"at": at},
        format="json",
    )


def test_setting_the_anchor_opens_the_staff_visit_relative_to_it(study: Study) -> None:
    participant = done_baseline(study)
    client = client_for(study, "analyst")

    res = anchor(client, study, participant, "2099-01-05T09:30:00+01:00")

    assert res.status_code == 200
    body = res.json()
    assert body["participant"] == participant.pk
    assert body["staff_anchor_at"] == "2099-01-05T08:30:00+00:00"
    assert [(v["timepoint"], v["status"], v["opens_at"], v["closes_at"]) for v in body["visits"]][
        1
    ] == ("h4", "upcoming", "2099-01-05T12:30:00+00:00", "2099-01-06T00:30:00+00:00")
    participant.refresh_from_db()
    assert participant.staff_anchor_at is not None
    assert participant.staff_anchor_at.isoformat() == "2099-01-05T08:30:00+00:00"
    entry = AuditEntry.objects.filter(action="participant.anchor").get()
    assert (entry.target, entry.detail) == (
        f"P{participant.pk}",
        {"from": None, "to": "2099-01-05T09:30:00+01:00"},
    )
    # A correction is logged with the value it replaced.
    assert anchor(client, study, participant, "2099-01-05T10:00:00Z").status_code == 200
    last = AuditEntry.objects.filter(action="participant.anchor").order_by("-seq").first()
    assert last is not None and last.detail["from"] == "2099-01-05T08:30:00+00:00"


@pytest.mark.parametrize(
    ("at", "field_message"),
    [
        ("2026-12-02T14:05:00", "Give the offset"),
        ("tomorrow", "Not an ISO 8601"),
        ("", "This field may not be blank."),
    ],
)
def test_malformed_anchors_are_refused_and_nothing_stored(
    study: Study, at: str, field_message: str
) -> None:
    participant = done_baseline(study)

    res = anchor(client_for(study, "analyst"), study, participant, at)

    assert res.status_code == 400
    error = res.json()["error"]
    assert error["code"] == "invalid"
    assert field_message in error["fields"]["at"][0]
    assert Participant.objects.get().staff_anchor_at is None
    assert not AuditEntry.objects.filter(action="participant.anchor").exists()


def test_inconsistent_anchors_are_refused_with_the_reason_and_nothing_stored(
    study: Study,
) -> None:
    participant = done_baseline(study, hours_ago=2)
    client = client_for(study, "owner")
    completed = Session.objects.get().completed_at
    assert completed is not None

    before = anchor(client, study, participant, (completed - H).isoformat())
    late = done_baseline(study, hours_ago=40)
    closed = anchor(client, study, late, (timezone.now() - 30 * H).isoformat())

    assert before.status_code == closed.status_code == 400
    assert "before the completion of visit 'baseline'" in before.json()["error"]["message"]
    assert before.json()["error"]["fields"]["at"] == [before.json()["error"]["message"]]
    assert closed.json()["error"]["message"].startswith(
        "With this anchor the window of visit 'h4' would already be closed"
    )
    assert list(Participant.objects.values_list("staff_anchor_at", flat=True)) == [None, None]
    assert not AuditEntry.objects.filter(action="participant.anchor").exists()


def test_anchor_needs_write_scope_and_analyst_and_a_staff_visit(study: Study) -> None:
    participant = done_baseline(study)
    at = "2099-01-05T09:30:00Z"

    assert anchor(client_for(study, "analyst", "read"), study, participant, at).status_code == 403
    assert anchor(client_for(study, "viewer"), study, participant, at).status_code == 403
    other = make_study(slug="other", n_events=1, n_practice=0, n_timepoints=2)
    stranger = client_for(other, "owner")
    assert anchor(stranger, study, participant, at).status_code == 404
    res = client_for(other, "analyst").post(
        f"/api/v1/studies/other/participants/{done_baseline(other).pk}/anchor",
        {"at": at},
        format="json",
    )
    assert res.status_code == 400
    assert res.json()["error"]["message"] == "No visit of this study counts from a staff time."
    assert not Participant.objects.exclude(staff_anchor_at=None).exists()


def test_visits_export_has_one_row_per_participant_and_timepoint(study: Study) -> None:
    waiting = done_baseline(study, hours_ago=2)
    anchored = done_baseline(study, hours_ago=30)
    infusion = timezone.now() - 28 * H
    Participant.objects.filter(pk=anchored.pk).update(staff_anchor_at=infusion)
    new = study_enrol(study=study).participant
    client = client_for(study, "analyst", "read")

    res = client.get(f"/api/v1/studies/{study.slug}/visits/?format=csv")

    assert res.status_code == 200
    assert res["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(res.content.decode())))
    assert list(rows[0]) == COLUMNS
    got = [(int(r["participant"]), r["timepoint"], r["status"], r["anchor_type"]) for r in rows]
    assert got == [
        (waiting.pk, "baseline", "done", "enrolment"),
        (waiting.pk, "h4", "waiting_anchor", "staff"),
        (waiting.pk, "d7", "upcoming", "first"),
        (anchored.pk, "baseline", "done", "enrolment"),
        (anchored.pk, "h4", "missed", "staff"),
        (anchored.pk, "d7", "upcoming", "first"),
        (new.pk, "baseline", "open", "enrolment"),
        (new.pk, "h4", "upcoming", "staff"),
        (new.pk, "d7", "upcoming", "first"),
    ]
    assert {r["reminders_sent"] for r in rows} == {"0"}
    h4 = rows[4]
    assert h4["anchor"] == infusion.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert h4["opens_at"] == (infusion + 4 * H).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert rows[1]["opens_at"] == rows[1]["anchor"] == ""

    page = client.get(f"/api/v1/studies/{study.slug}/visits/?status=missed").json()
    assert page["next"] is None
    assert [(r["participant"], r["timepoint"]) for r in page["results"]] == [(anchored.pk, "h4")]
    assert list(page["results"][0]) == COLUMNS
    assert AuditEntry.objects.filter(action="export.visits").count() == 2


def test_visits_export_refuses_unknown_parameters_and_viewers(study: Study) -> None:
    client = client_for(study, "analyst", "read")
    assert client.get(f"/api/v1/studies/{study.slug}/visits/?status=late").status_code == 400
    assert client.get(f"/api/v1/studies/{study.slug}/visits/?format=parquet").status_code == 400
    assert client.get(f"/api/v1/studies/{study.slug}/visits/?when=now").status_code == 400
    viewer = client_for(study, "viewer", "read")
    assert viewer.get(f"/api/v1/studies/{study.slug}/visits/").status_code == 403
