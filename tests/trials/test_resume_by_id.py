"""Issue 14.2: a recruiter id is not a key to another person's session.

A known id resumes its participant only from the browser that enrolled it (a random key
cookie, stored hashed), or, where the study sets `resume_by_external_id`, when the id is
too long and random to guess (Prolific's 24 hex characters). Otherwise the answer is the
one a new id gets: the consent page, then a new participant flagged `duplicate`.
"""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.browser import BROWSER_COOKIE
from trials.models import Participant, ParticipantIdentity, Response, Session, Study
from trials.services.enrolment import external_id_unguessable

pytestmark = [pytest.mark.usefixtures("postgres"), pytest.mark.django_db]

PROLIFIC_ID = "5f1e9c3b7a2d4e6f8a0b1c2d"  # 24 hex characters


@pytest.fixture
def study() -> Study:
    return make_study(n_events=1, n_practice=0, n_timepoints=2)


def finish(api: ParticipantApi, session: Session) -> None:
    api.answer(session.token)
    assert api.complete(session.token).status_code == 200


def consent_page(text: str) -> str:
    """The page without what differs per request (CSRF token, the id echoed back)."""
    text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
    return re.sub(r'name="sona_id" value="[^"]*"', "", text)


def test_a_guessed_sona_id_gets_the_page_a_new_id_gets_and_never_the_session(
    study: Study, api: ParticipantApi
) -> None:
    victim = Client()
    victim.post(f"/s/{study.slug}/", {"sona_id": "5", "consent": "yes"})
    victim_session = Session.objects.get()
    api.answer(victim_session.token, 1)

    attacker = Client()
    known = attacker.get(f"/s/{study.slug}/?sona_id=5")
    unknown = Client().get(f"/s/{study.slug}/?sona_id=6")
    assert known.status_code == unknown.status_code == 200
    assert consent_page(known.text) == consent_page(unknown.text)

    res = attacker.post(f"/s/{study.slug}/", {"sona_id": "5", "consent": "yes"})
    fresh = Client().post(f"/s/{study.slug}/", {"sona_id": "6", "consent": "yes"})

    assert res.status_code == fresh.status_code == 302
    assert res["Location"].startswith("/t/") and fresh["Location"].startswith("/t/")
    assert victim_session.token not in res["Location"]
    assert victim_session.participant.token not in res["Location"]
    mine = Session.objects.get(token=res["Location"].split("/")[2])
    assert mine.participant != victim_session.participant
    assert (mine.step_index, Response.objects.filter(session=mine).count()) == (0, 0)
    assert list(
        ParticipantIdentity.objects.filter(external_id="5")
        .order_by("id")
        .values_list("participant_id", "duplicate")
    ) == [(victim_session.participant_id, False), (mine.participant_id, True)]
    # The victim's session is untouched.
    victim_session.refresh_from_db()
    assert (victim_session.step_index, victim_session.status) == (1, "in_progress")


def test_api_answers_alike_for_a_known_and_an_unknown_id(study: Study) -> None:
    first = ParticipantApi(Client()).enrol(study.slug, external_id="5")
    known = ParticipantApi(Client()).enrol(study.slug, external_id="5")
    unknown = ParticipantApi(Client()).enrol(study.slug, external_id="6")

    assert first.status_code == known.status_code == unknown.status_code == 201
    assert (
        set(known.json())
        == set(unknown.json())
        == {
            "session_token",
            "participant_token",
            "task_url",
        }
    )
    assert known.json()["session_token"] != first.json()["session_token"]
    assert Participant.objects.count() == 3


def test_same_browser_after_a_finished_visit_goes_to_the_next_visit_without_consent(
    study: Study, api: ParticipantApi, client: Client
) -> None:
    client.post(f"/s/{study.slug}/", {"sona_id": "5", "consent": "yes"})
    participant = Participant.objects.get()
    assert client.cookies[BROWSER_COOKIE].value
    finish(api, Session.objects.get())

    again = client.get(f"/s/{study.slug}/?sona_id=5")

    assert again.status_code == 302
    assert again["Location"] == f"/r/{participant.token}/"
    page = client.get(again["Location"])
    assert page.status_code == 200
    assert "Your next session is not open yet" in page.text
    # Window open: the return link starts the second visit's session.
    Session.objects.update(completed_at=timezone.now() - timedelta(hours=5))
    assert client.get(f"/s/{study.slug}/?sona_id=5")["Location"] == f"/r/{participant.token}/"
    go = client.get(f"/r/{participant.token}/")
    second = Session.objects.get(timepoint__order=1)
    assert go["Location"] == f"/t/{second.token}/"
    assert (Participant.objects.count(), ParticipantIdentity.objects.count()) == (1, 1)


@pytest.mark.parametrize(
    ("setting", "external_id", "resumes"),
    [
        (True, PROLIFIC_ID, True),
        (False, PROLIFIC_ID, False),  # the safe default: only the enrolling browser
        (True, "81234", False),  # a SONA id is guessable whatever the setting
        (True, "a" * 24, False),  # long but not random
    ],
)
def test_resume_from_another_browser_only_for_long_random_ids_when_the_study_allows(
    study: Study, setting: bool, external_id: str, resumes: bool
) -> None:
    Study.objects.filter(pk=study.pk).update(resume_by_external_id=setting)
    Client().post(f"/s/{study.slug}/", {"PROLIFIC_PID": external_id, "consent": "yes"})
    owner = Participant.objects.get()

    res = Client().get(f"/s/{study.slug}/?PROLIFIC_PID={external_id}")

    if resumes:
        assert (res.status_code, res["Location"]) == (302, f"/r/{owner.token}/")
    else:
        assert res.status_code == 200
        assert 'name="consent"' in res.text
    assert Participant.objects.count() == 1


def test_a_withdrawn_owner_is_never_resumed(study: Study, client: Client) -> None:
    client.post(f"/s/{study.slug}/", {"sona_id": "5", "consent": "yes"})
    Participant.objects.update(withdrawn_at=timezone.now())

    res = client.get(f"/s/{study.slug}/?sona_id=5")

    assert res.status_code == 200
    assert 'name="consent"' in res.text


@pytest.mark.parametrize(
    ("external_id", "unguessable"),
    [
        (PROLIFIC_ID, True),
        ("A1B2C3D4E5F6G7H8I9J0K1L2", True),
        ("5f1e9c3b7a2d4e6f8a0b1c2", False),  # 23 characters
        ("81234", False),
        ("0" * 24, False),
        ("abababababababababababab", False),
        ("5f1e9c3b 7a2d4e6f8a0b1c2d", False),
    ],
)
def test_which_ids_are_unguessable(external_id: str, unguessable: bool) -> None:
    assert external_id_unguessable(external_id) is unguessable
