"""Reminders on the dashboard: the participant page, the Reminders page, the due list CSV."""

import csv
import io

import pytest
from django.test import Client

from reminders.models import Reminder
from tests.dashboard.builders import member
from tests.reminders.conftest import SITE, hours_ago, participant_done_at, three_visits
from trials.models import ParticipantIdentity, Study

pytestmark = pytest.mark.django_db


def logged_in(study: Study, role: str) -> Client:
    client = Client()
    client.force_login(member(study, role, username=f"{role}-{study.slug}"))
    return client


@pytest.fixture
def study(settings: pytest.FixtureRequest) -> Study:
    settings.SITE_URL = SITE  # type: ignore[attr-defined]
    return three_visits(reminder_closing_hours=2)


def test_the_participant_page_shows_the_address_and_each_reminder(study: Study) -> None:
    participant = participant_done_at(study, hours_ago(5), email="ana@example.org")
    Reminder.objects.create(
        participant=participant,
        timepoint=study.timepoints.get(order=1),
        kind="opens",
        status="failed",
        attempts=6,
        last_error="ConnectionRefusedError: [Errno 111] Connection refused",
        opens_at=hours_ago(1),
    )
    url = f"/dashboard/s/{study.slug}/participants/{participant.pk}/"

    page = logged_in(study, "analyst").get(url).content.decode()

    assert '<span class="mono" id="contact-email">ana@example.org</span>' in page
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in page
    assert (
        '<tr data-reminder="opens"><td>T1</td><td>opens</td><td>failed</td><td class="num">6</td>'
        in page
    )
    # A viewer sees no identity: not this page, not the Reminders page, not the due list.
    viewer = logged_in(study, "viewer")
    assert viewer.get(url).status_code == 403
    assert viewer.get(f"/dashboard/s/{study.slug}/reminders/").status_code == 403
    assert viewer.get(f"/dashboard/s/{study.slug}/reminders/due.csv").status_code == 403

    reminders_page = logged_in(study, "owner").get(f"/dashboard/s/{study.slug}/reminders/")
    assert reminders_page.status_code == 200
    text = reminders_page.content.decode()
    assert '<dd data-status="failed">1</dd>' in text and '<dd data-status="sent">0</dd>' in text
    assert (
        f'href="/dashboard/s/{study.slug}/participants/{participant.pk}/">P{participant.pk}</a>'
        in text
    )


def test_the_due_list_has_each_open_visit_with_its_recruiter_id_and_return_link() -> None:
    study = three_visits(slug="prolific-study", collect_email=False)
    due = participant_done_at(study, hours_ago(5))
    ParticipantIdentity.objects.create(
        participant=due, study=study, source="prolific", external_id="=5f1a2b3c4d5e6f7a8b9c0d1e"
    )
    participant_done_at(study, hours_ago(1))  # T1 opens in 3 h: not due
    participant_done_at(study, hours_ago(20))  # T1 closed: missed, not due

    response = logged_in(study, "analyst").get(f"/dashboard/s/{study.slug}/reminders/due.csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    done = due.sessions.get().completed_at
    assert done is not None
    from datetime import timedelta

    assert rows == [
        [
            "participant",
            "recruiter",
            "external_id",
            "timepoint",
            "opens_at",
            "closes_at",
            "return_url",
        ],
        [
            f"P{due.pk}",
            "prolific",
            "'=5f1a2b3c4d5e6f7a8b9c0d1e",  # a spreadsheet must not run it
            "T1",
            (done + timedelta(hours=4)).isoformat(),
            (done + timedelta(hours=12)).isoformat(),
            f"http://127.0.0.1:8000/r/{due.token}/",
        ],
    ]


def test_the_visits_export_counts_the_reminders_sent(study: Study) -> None:
    from rest_framework.test import APIClient

    participant = participant_done_at(study, hours_ago(5), email="ana@example.org")
    t1 = study.timepoints.get(order=1)
    for kind, status in (("opens", "sent"), ("closing", "failed")):
        Reminder.objects.create(
            participant=participant,
            timepoint=t1,
            kind=kind,
            status=status,
            opens_at=hours_ago(1),
            sent_at=hours_ago(1) if status == "sent" else None,
        )
    client = APIClient()
    client.force_authenticate(member(study, "analyst", username="api-analyst"))

    response = client.get(f"/api/v1/studies/{study.slug}/visits/?format=csv")

    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [(r["timepoint"], r["reminders_sent"]) for r in rows] == [
        ("baseline", "0"),
        ("T1", "1"),
        ("T2", "0"),
    ]
