"""Coming back: the task resumes at the first unanswered step; the return link's windows."""

import importlib.util
import json
import re
from datetime import timedelta

import pytest
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.test import Client
from django.utils import timezone

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Participant, Session, Study
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.usefixtures("postgres")


def plan_steps(api: ParticipantApi, token: str) -> list[tuple[str, str, str, bool]]:
    return [
        (s["event"], s["block"], s["phase"], s["practice"])
        for s in api.state(token).json()["steps"]
    ]


# --- resume --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_state_lists_exactly_the_remaining_steps(api: ParticipantApi) -> None:
    study = make_study(n_events=3, n_practice=1, collect_confidence=True, ratings=True)
    token = study_enrol(study=study).session.token
    full = plan_steps(api, token)
    total = len(full)
    assert total == 3 * 1 + 3 * 3 + 3 + 3 * 5  # practice, block 1, block 2, ratings

    done = 0
    for checkpoint in (1, 2, 5, 11, 20, total):
        api.answer(token, checkpoint - done)
        done = checkpoint
        body = api.state(token).json()
        assert body["progress"] == {"done": done, "total": total}
        assert plan_steps(api, token) == full[done:]
        assert body["status"] == "in_progress"
    assert plan_steps(api, token) == []
    assert api.complete(token).status_code == 200


# --- the task page -------------------------------------------------------------------------


def task_page_ready() -> bool:
    try:
        get_template("trials/task.html")
    except TemplateDoesNotExist:
        return False
    return importlib.util.find_spec("trials.ui_strings") is not None


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["en", "fr"])
def test_task_page_renders_its_config(client: Client, language: str) -> None:
    if not task_page_ready():
        pytest.skip("templates/trials/task.html or trials/ui_strings.py is not written yet")
    session = study_enrol(study=make_study(n_events=2), language=language).session

    res = client.get(f"/t/{session.token}/")

    assert res.status_code == 200
    match = re.search(
        r'<script id="task-config" type="application/json">(.*?)</script>', res.text, re.S
    )
    assert match, "the json_script config task.js reads"
    config = json.loads(match.group(1))
    assert {k: config[k] for k in ("token", "api_base", "language")} == {
        "token": session.token,
        "api_base": "/api/v1",
        "language": language,
    }
    assert isinstance(config["strings"], dict)
    assert config["strings"]
    # The page carries no answer and no base rate: the script asks the API.
    assert Session.objects.get().step_index == 0


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["A" * 32, "x", "A" * 65, "%00", "ab%00"])
def test_task_page_unknown_token_is_404(client: Client, token: str) -> None:
    study_enrol(study=make_study(n_events=1))

    assert client.get(f"/t/{token}/").status_code == 404


# --- return link ---------------------------------------------------------------------------


def finish(api: ParticipantApi, session: Session, hours_ago: float) -> None:
    """Answer and complete a session, then move its completion `hours_ago` into the past."""
    api.answer(session.token)
    assert api.complete(session.token).status_code == 200
    Session.objects.filter(pk=session.pk).update(
        completed_at=timezone.now() - timedelta(hours=hours_ago)
    )


@pytest.fixture
def study() -> Study:
    """Timepoints: baseline; T1 opens +4 h, closes +12 h; T2 opens +8 h, closes +24 h."""
    return make_study(n_events=1, n_practice=0, n_timepoints=3)


@pytest.mark.django_db
def test_incomplete_session_sends_back_to_it(
    client: Client, api: ParticipantApi, study: Study
) -> None:
    enrolment = study_enrol(study=study)
    api.answer(enrolment.session.token, 1)

    res = client.get(f"/r/{enrolment.participant.token}/")

    assert res.status_code == 302
    assert res["Location"] == f"/t/{enrolment.session.token}/"
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_before_the_window_says_when_it_opens(
    client: Client, api: ParticipantApi, study: Study
) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session, hours_ago=1)
    completed_at = Session.objects.get().completed_at
    opens = completed_at + timedelta(hours=4)

    res = client.get(f"/r/{enrolment.participant.token}/")

    assert res.status_code == 200
    assert "Your next session is not open yet" in res.text
    assert f"It opens on {opens:%-d %B %Y, %H:%M} (UTC)" in res.text
    assert Session.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("sequence", [0, 1, 2])
def test_inside_the_window_starts_the_next_timepoint(
    client: Client, api: ParticipantApi, study: Study, sequence: int
) -> None:
    enrolments = [study_enrol(study=study, arm_code="patients") for _ in range(3)]
    assert [e.participant.sequence for e in enrolments] == [0, 1, 2]
    participant, session = enrolments[sequence].participant, enrolments[sequence].session
    finish(api, session, hours_ago=5)
    lists = [sel.event_list for sel in study.study_lists.order_by("position")]

    res = client.get(f"/r/{participant.token}/")
    again = client.get(f"/r/{participant.token}/")

    new = Session.objects.get(participant=participant, timepoint__order=1)
    assert res.status_code == again.status_code == 302
    assert res["Location"] == again["Location"] == f"/t/{new.token}/"
    assert new.event_list == lists[(sequence + 1) % 3]
    assert (new.status, new.step_index, new.language) == ("created", 0, "en")
    assert Session.objects.filter(participant=participant).count() == 2
    assert Session.objects.count() == 4


@pytest.mark.django_db
def test_window_edges(client: Client, api: ParticipantApi, study: Study) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session, hours_ago=4.01)

    assert client.get(f"/r/{enrolment.participant.token}/").status_code == 302


@pytest.mark.django_db
def test_after_the_window_is_410(client: Client, api: ParticipantApi, study: Study) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session, hours_ago=13)

    res = client.get(f"/r/{enrolment.participant.token}/")

    assert res.status_code == 410
    assert "This session has closed" in res.text
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_each_timepoint_counts_from_the_previous_one(
    client: Client, api: ParticipantApi, study: Study
) -> None:
    enrolment = study_enrol(study=study)
    token = enrolment.participant.token
    finish(api, enrolment.session, hours_ago=100)
    Session.objects.filter(pk=enrolment.session.pk).update(
        completed_at=timezone.now() - timedelta(hours=5)
    )
    client.get(f"/r/{token}/")
    second = Session.objects.get(timepoint__order=1)
    finish(api, second, hours_ago=9)

    res = client.get(f"/r/{token}/")

    third = Session.objects.get(timepoint__order=2)
    assert res["Location"] == f"/t/{third.token}/"
    lists = [sel.event_list for sel in study.study_lists.order_by("position")]
    assert [s.event_list for s in Session.objects.order_by("timepoint__order")] == lists


@pytest.mark.django_db
def test_last_timepoint_done_is_the_finished_page(client: Client, api: ParticipantApi) -> None:
    study = make_study(n_events=1, n_practice=0, n_timepoints=1)
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session, hours_ago=0)

    res = client.get(f"/r/{enrolment.participant.token}/")

    assert res.status_code == 200
    assert "All sessions are complete" in res.text
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_withdrawn_participant_link_is_revoked_like_an_unknown_one(
    client: Client, study: Study
) -> None:
    enrolment = study_enrol(study=study)
    Participant.objects.update(withdrawn_at=timezone.now())

    res = client.get(f"/r/{enrolment.participant.token}/")
    unknown = client.get(f"/r/{'A' * 32}/")

    assert res.status_code == unknown.status_code == 404
    assert res.text == unknown.text


@pytest.mark.django_db
def test_closed_study_starts_no_new_timepoint(
    client: Client, api: ParticipantApi, study: Study
) -> None:
    enrolment = study_enrol(study=study)
    finish(api, enrolment.session, hours_ago=5)
    Study.objects.update(status=Study.Status.CLOSED)

    res = client.get(f"/r/{enrolment.participant.token}/")

    assert res.status_code == 410
    assert Session.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["A" * 32, "x", "A" * 65, "%00", "ab%00"])
def test_return_link_unknown_token_is_404(client: Client, study: Study, token: str) -> None:
    study_enrol(study=study)

    assert client.get(f"/r/{token}/").status_code == 404
    assert Session.objects.count() == 1


@pytest.mark.django_db
def test_a_session_token_is_not_a_return_token(client: Client, study: Study) -> None:
    enrolment = study_enrol(study=study)

    assert client.get(f"/r/{enrolment.session.token}/").status_code == 404
    assert client.get(f"/t/{enrolment.participant.token}/").status_code == 404


@pytest.mark.django_db
def test_participant_without_a_session_starts_the_first_one(client: Client, study: Study) -> None:
    enrolment = study_enrol(study=study, external_id="P-9", browser_key="k" * 40)
    Session.objects.all().delete()

    res = client.get(f"/r/{enrolment.participant.token}/")
    again = study_enrol(study=study, external_id="P-9", browser_key="k" * 40)

    session = Session.objects.get()
    assert res.status_code == 302
    assert res["Location"] == f"/t/{session.token}/"
    assert (session.timepoint.order, session.participant) == (0, enrolment.participant)
    assert (again.created, again.session) == (False, session)
