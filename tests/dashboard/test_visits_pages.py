"""The dashboard's visits (issue 10 items 2 and 4): each timepoint's anchor on the design
page, the participant page's visits, return link, QR code and staff time, the overview's
visits per arm x timepoint."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from trials.models import Participant, Session, Study, Timepoint
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.django_db
H = timedelta(hours=1)


def test_the_design_page_sets_each_timepoints_anchor(
    client_as: Callable[[str], Client], study: Study
) -> None:
    owner = client_as("owner")
    added = owner.post(
        "/dashboard/s/small/setup/design/",
        {
            "action": "add_timepoint",
            "tp-label": "d7",
            "tp-anchor": "first",
            "tp-opens_value": "7",
            "tp-opens_unit": "days",
            "tp-closes_value": "8",
            "tp-closes_unit": "days",
        },
    )
    t1 = Timepoint.objects.get(study=study, order=1)
    edited = owner.post(
        f"/dashboard/s/small/setup/timepoints/{t1.pk}/",
        {
            "label": "h4",
            "anchor": "staff",
            "opens_value": "4",
            "opens_unit": "hours",
            "closes_value": "16",
            "closes_unit": "hours",
        },
    )
    refused = owner.post(
        f"/dashboard/s/small/setup/timepoints/{t1.pk}/",
        {"label": "h4", "anchor": "noon", "opens_value": "4", "opens_unit": "hours"},
    )

    assert (added.status_code, edited.status_code, refused.status_code) == (302, 302, 400)
    assert list(
        Timepoint.objects.filter(study=study).order_by("order").values_list("label", "anchor")
    ) == [("baseline", "previous"), ("h4", "staff"), ("d7", "first")]
    page = owner.get("/dashboard/s/small/setup/design/").content.decode()
    assert "4 h after the staff time" in page
    assert "7 days after the first visit" in page


@pytest.fixture
def clinic(study: Study) -> Participant:
    """small's T1 counts from the staff time; P has done baseline 2 hours ago."""
    Timepoint.objects.filter(study=study, order=1).update(
        anchor="staff", opens_after=4 * H, closes_after=16 * H
    )
    enrolment = study_enrol(study=study)
    Session.objects.filter(pk=enrolment.session.pk).update(
        status="completed", completed_at=timezone.now() - 2 * H
    )
    return enrolment.participant


def test_participant_page_shows_visits_link_qr_and_sets_the_staff_time(
    client_as: Callable[[str], Client], clinic: Participant
) -> None:
    analyst = client_as("analyst")
    url = f"/dashboard/s/small/participants/{clinic.pk}/"

    page = analyst.get(url).content.decode()

    assert 'data-visit="baseline" data-status="done"' in page
    assert 'data-visit="T1" data-status="waiting_anchor"' in page
    assert f'value="http://testserver/r/{clinic.token}/"' in page
    assert 'data-copy="participant-return-link"' in page
    assert 'class="qr-code"' in page
    assert 'id="anchor-form"' in page

    saved = analyst.post(f"{url}anchor/", {"at": "2099-03-28T01:30", "zone": "Europe/Paris"})

    assert saved.status_code == 302
    clinic.refresh_from_db()
    assert clinic.staff_anchor_at == datetime(2099, 3, 28, 0, 30, tzinfo=UTC)
    after = analyst.get(url).content.decode()
    assert 'data-visit="T1" data-status="upcoming"' in after
    assert "2099-03-28 04:30" in after  # opens 4 h after, UTC
    assert AuditEntry.objects.filter(action="participant.anchor").count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"at": "2020-01-01T10:00", "zone": "UTC"}, "before the completion of visit"),
        ({"at": "2099-01-01T10:00", "zone": "Mars/Olympus"}, "Unknown time zone"),
        ({"at": "soon", "zone": "UTC"}, "Enter a valid date/time."),
    ],
)
def test_bad_staff_times_are_refused_on_the_page_and_nothing_stored(
    client_as: Callable[[str], Client], clinic: Participant, data: dict[str, str], message: str
) -> None:
    res = client_as("analyst").post(f"/dashboard/s/small/participants/{clinic.pk}/anchor/", data)

    assert res.status_code == 400
    assert message in res.content.decode()
    clinic.refresh_from_db()
    assert clinic.staff_anchor_at is None
    assert not AuditEntry.objects.filter(action="participant.anchor").exists()


def test_viewers_cannot_set_a_staff_time(
    client_as: Callable[[str], Client], clinic: Participant
) -> None:
    res = client_as("viewer").post(
        f"/dashboard/s/small/participants/{clinic.pk}/anchor/", {"at": "2099-01-01T10:00"}
    )
    assert res.status_code == 403
    clinic.refresh_from_db()
    assert clinic.staff_anchor_at is None


def test_overview_counts_visits_per_arm_and_timepoint(
    client_as: Callable[[str], Client], study: Study, clinic: Participant
) -> None:
    due = study_enrol(study=study, arm_code=clinic.arm.code)
    Session.objects.filter(pk=due.session.pk).update(
        status="completed", completed_at=timezone.now() - 3 * H
    )
    Participant.objects.filter(pk=due.participant.pk).update(staff_anchor_at=timezone.now() - 5 * H)

    data = client_as("viewer").get("/dashboard/s/small/overview.json").json()

    t1 = Timepoint.objects.get(study=study, order=1)
    baseline = Timepoint.objects.get(study=study, order=0)
    rows = {r["key"]: r for r in data["visits"]}
    assert rows[f"{clinic.arm_id}-{baseline.pk}"] == {
        "key": f"{clinic.arm_id}-{baseline.pk}",
        "done": 2,
        "open": 0,
        "upcoming": 0,
        "waiting_anchor": 0,
        "missed": 0,
        "due_today": 0,
    }
    assert rows[f"{clinic.arm_id}-{t1.pk}"] == {
        "key": f"{clinic.arm_id}-{t1.pk}",
        "done": 0,
        "open": 1,
        "upcoming": 0,
        "waiting_anchor": 1,
        "missed": 0,
        "due_today": 1,
    }
    page = client_as("viewer").get("/dashboard/s/small/").content.decode()
    assert f'data-visit="{clinic.arm_id}-{t1.pk}:waiting_anchor">1<' in page
