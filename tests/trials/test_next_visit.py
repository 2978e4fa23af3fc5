"""The way back: `next_visit` in the completion answer, the participant's visits API, the
return link's pages and the calendar file (issue 10 items 1, 2 and 5)."""

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Participant, Session, Study, Timepoint
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.usefixtures("postgres"), pytest.mark.django_db]

H = timedelta(hours=1)


@pytest.fixture
def study() -> Study:
    """baseline; h4: 4 h after the staff anchor, closes after 16 h; d7: 7-8 days after the
    first visit (the study this platform exists for)."""
    study = make_study(n_events=1, n_practice=0, n_timepoints=3)
    Timepoint.objects.filter(study=study, order=1).update(
        label="h4", anchor="staff", opens_after=4 * H, closes_after=16 * H
    )
    Timepoint.objects.filter(study=study, order=2).update(
        label="d7", anchor="first", opens_after=timedelta(days=7), closes_after=timedelta(days=8)
    )
    return study


def finish(api: ParticipantApi, session: Session) -> dict[str, Any]:
    api.answer(session.token)
    res = api.complete(session.token)
    assert res.status_code == 200
    return dict(res.json())


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def config_of(text: str, name: str) -> Any:
    match = re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', text, re.S)
    assert match, name
    return json.loads(match.group(1))


def test_staff_anchored_next_visit_has_no_window_until_the_anchor_is_set(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study)
    body = finish(api, enrolment.session)
    token = enrolment.participant.token

    assert body["next_visit"] == {
        "timepoint": "h4",
        "url": f"http://testserver/r/{token}/",
        "opens_at": None,
        "closes_at": None,
    }
    page = client.get(f"/r/{token}/")
    assert page.status_code == 200
    assert "The research team will set the time of your next session" in page.text
    assert client.get(f"/r/{token}/calendar.ics").status_code == 404


def test_participant_visits_api_lists_every_visit_with_its_status(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study, language="fr")
    finish(api, enrolment.session)
    done = Session.objects.get().completed_at
    assert done is not None
    infusion = timezone.now() - 2 * H
    Participant.objects.update(staff_anchor_at=infusion)
    participant = Participant.objects.get()

    res = client.get(f"/api/v1/participants/{participant.token}")

    assert res.status_code == 200
    assert res.json() == {
        "study": study.slug,
        "language": "fr",
        "visits": [
            {
                "timepoint": "baseline",
                "label": "baseline",
                "status": "done",
                "opens_at": iso(participant.consented_at),
                "closes_at": None,
                "completed_at": iso(done),
            },
            {
                "timepoint": "h4",
                "label": "h4",
                "status": "upcoming",
                "opens_at": iso(infusion + 4 * H),
                "closes_at": iso(infusion + 16 * H),
                "completed_at": None,
            },
            {
                "timepoint": "d7",
                "label": "d7",
                "status": "upcoming",
                "opens_at": None,
                "closes_at": None,
                "completed_at": None,
            },
        ],
    }


@pytest.mark.parametrize("token", ["A" * 32, "x", "A" * 65, "%00", "withdrawn"])
def test_unknown_malformed_or_withdrawn_tokens_are_the_same_404(
    study: Study, client: Client, token: str
) -> None:
    enrolment = study_enrol(study=study)
    if token == "withdrawn":
        Participant.objects.update(withdrawn_at=timezone.now())
        token = enrolment.participant.token
    baseline = {
        "api": client.get(f"/api/v1/participants/{'B' * 32}"),
        "page": client.get(f"/r/{'B' * 32}/"),
        "ics": client.get(f"/r/{'B' * 32}/calendar.ics"),
    }

    api_res = client.get(f"/api/v1/participants/{token}")
    page = client.get(f"/r/{token}/")
    ics = client.get(f"/r/{token}/calendar.ics")

    assert api_res.status_code == page.status_code == ics.status_code == 404
    assert (
        api_res.json()
        == baseline["api"].json()
        == {"error": {"code": "not_found", "message": "Unknown link.", "fields": {}}}
    )
    assert page.text == baseline["page"].text
    assert ics.text == baseline["ics"].text
    assert Session.objects.count() == 1


def test_before_the_window_the_page_carries_the_window_and_the_server_clock(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study, language="fr")
    finish(api, enrolment.session)
    infusion = timezone.now() + 30 * H
    Participant.objects.update(staff_anchor_at=infusion)
    token = enrolment.participant.token

    page = client.get(f"/r/{token}/")

    assert page.status_code == 200
    assert "Votre prochaine session n'est pas encore ouverte" in page.text
    assert "Revenez alors avec ce même lien." in page.text
    config = config_of(page.text, "visit-config")
    assert config["next_visit"] == {
        "opens_at": (infusion + 4 * H).isoformat(),
        "closes_at": (infusion + 16 * H).isoformat(),
    }
    assert config["language"] == "fr"
    server_now = datetime.fromisoformat(config["server_now"])
    assert abs((server_now - timezone.now()).total_seconds()) < 5
    assert config["strings"]["moment_day"] == "{day} à {time}"
    assert 'src="/static/task/when.js"' in page.text
    assert f'href="/r/{token}/calendar.ics"' in page.text
    assert Session.objects.count() == 1


def test_the_calendar_file_is_the_next_window(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session)
    infusion = (timezone.now() + 2 * H).replace(microsecond=0)
    Participant.objects.update(staff_anchor_at=infusion)
    token = enrolment.participant.token

    res = client.get(f"/r/{token}/calendar.ics")

    assert res.status_code == 200
    assert res["Content-Type"] == "text/calendar; charset=utf-8"
    assert res["Content-Disposition"] == 'attachment; filename="next-session.ics"'
    calendar = Calendar.from_ical(res.content)
    (event,) = calendar.walk("VEVENT")
    assert event.decoded("dtstart") == infusion + 4 * H
    assert event.decoded("dtend") == infusion + 16 * H
    assert str(event["url"]) == f"http://testserver/r/{token}/"
    assert str(event["summary"]) == f"{study.title}: your next session"
    assert token not in str(event["uid"])
    assert f"http://testserver/r/{token}/" in str(event["description"])
    (alarm,) = event.walk("VALARM")
    assert alarm.decoded("trigger") == timedelta(0)


def test_inside_the_window_the_link_starts_the_visit_then_resumes_it(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session)
    Participant.objects.update(staff_anchor_at=timezone.now() - 5 * H)
    token = enrolment.participant.token

    first = client.get(f"/r/{token}/")
    second = Session.objects.get(timepoint__label="h4")
    api.answer(second.token, 1)
    again = client.get(f"/r/{token}/")

    assert first["Location"] == again["Location"] == f"/t/{second.token}/"
    assert Session.objects.count() == 2


def test_after_the_window_the_visit_is_missed_and_never_reopened(
    api: ParticipantApi, study: Study, client: Client
) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session)
    Participant.objects.update(staff_anchor_at=timezone.now() - 20 * H)
    token = enrolment.participant.token

    page = client.get(f"/r/{token}/")

    # h4 is missed; d7 (first-anchored) is ahead: the link says when it opens.
    assert page.status_code == 200
    assert config_of(page.text, "visit-config")["next_visit"]["opens_at"] == iso(
        Session.objects.get().completed_at + timedelta(days=7)  # type: ignore[operator]
    )
    visits = client.get(f"/api/v1/participants/{token}").json()["visits"]
    assert [v["status"] for v in visits] == ["done", "missed", "upcoming"]
    # d7 closed too: nothing ahead, the page says the session closed and counts as missed.
    Session.objects.update(completed_at=timezone.now() - timedelta(days=9))
    Participant.objects.update(staff_anchor_at=timezone.now() - timedelta(days=9) + H)
    closed = client.get(f"/r/{token}/")
    assert closed.status_code == 410
    assert "This session counts as missed" in closed.text
    assert Session.objects.count() == 1


def test_last_visit_completion_has_no_next_visit(api: ParticipantApi, client: Client) -> None:
    study = make_study(n_events=1, n_practice=0, n_timepoints=1)
    enrolment = study_enrol(study=study)

    body = finish(api, enrolment.session)

    assert body["next_visit"] is None
    assert api.state(enrolment.session.token).json()["completion"]["next_visit"] is None
    page = client.get(f"/t/{enrolment.session.token}/")
    assert 'id="next-visit-template"' not in page.text


@pytest.mark.parametrize(
    ("language", "heading", "copy"),
    [
        ("en", "Your next session", "Copy the link"),
        ("fr", "Votre prochaine session", "Copier le lien"),
    ],
)
def test_task_page_carries_the_way_back_for_every_visit_but_the_last(
    study: Study, client: Client, language: str, heading: str, copy: str
) -> None:
    enrolment = study_enrol(study=study, language=language)
    token = enrolment.participant.token

    page = client.get(f"/t/{enrolment.session.token}/")

    assert page.status_code == 200
    template = page.text.split('<template id="next-visit-template">')[1].split("</template>")[0]
    assert heading in template and copy in template
    assert f'value="http://testserver/r/{token}/"' in template
    assert f'href="/r/{token}/calendar.ics"' in template
    assert '<svg width="' in template and 'class="qr-code"' in template
    assert 'id="next-visit-contact"' in template
    config = config_of(page.text, "task-config")
    assert config["strings"]["next_opens_closes"].count("{") == 3
