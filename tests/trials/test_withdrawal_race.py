"""Withdrawal against answers in flight (real PostgreSQL, a thread answering), and its stickiness.

The answering thread posts each step as fast as the server answers, over the Django test
client (its own database connection, autocommit, as a web worker); the withdrawal runs
in the main thread mid-session. Whatever the interleaving, nothing of the participant may
remain and the withdrawal's count must be the number of answers the server accepted.
"""

import json
import threading
import time
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client

from audit.models import AuditEntry
from dashboard.services import participant_withdraw
from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import (
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    StudyMembership,
    Trial,
    WithdrawnIdentity,
)
from trials.services.enrolment import study_enrol

ROUNDS = 8


def answer_until_refused(token: str, accepted: list[int], refusals: list[Any]) -> None:
    """Answer every step in order; stop at the first refusal (recorded)."""
    try:
        api = ParticipantApi(Client())
        for step in api.state(token).json()["steps"]:
            res = api.respond(
                token,
                event=step["event"],
                phase=step["phase"],
                value=api.value_for(token, step, 40),
            )
            if res.status_code != 201:
                refusals.append((res.status_code, res.json()["error"]["code"]))
                return
            body = res.json()
            accepted.append(body["id"])
            if step["phase"] == "e1":
                api.brs[(token, step["event"])] = body["br"]
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_an_answer_in_flight_never_survives_a_withdrawal(postgres: None) -> None:
    study = make_study(slug="race", n_events=12, n_timepoints=1)
    owner = User.objects.create_user("pi")
    interrupted = 0
    for round_ in range(ROUNDS):
        enrolment = study_enrol(study=study)
        participant = enrolment.participant
        accepted: list[int] = []
        refusals: list[Any] = []
        thread = threading.Thread(
            target=answer_until_refused, args=(enrolment.session.token, accepted, refusals)
        )
        thread.start()
        # Let it get going, then withdraw at a different point of each round.
        deadline = time.monotonic() + 10
        while len(accepted) < 3 + 2 * round_ and thread.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.001)
        withdrawal = participant_withdraw(study=study, participant_id=participant.pk, actor=owner)
        thread.join(timeout=30)
        assert not thread.is_alive()

        sessions = Session.objects.filter(participant=participant)
        assert Response.objects.filter(session__in=sessions).count() == 0, round_
        assert Trial.objects.filter(session__in=sessions).count() == 0, round_
        assert withdrawal.n_responses_deleted == len(accepted), (round_, refusals)
        assert list(sessions.values_list("status", flat=True)) == ["abandoned"]
        if refusals:
            interrupted += 1
            assert refusals == [(409, "session_closed")], round_
    # The thread was cut off mid-session (not finished before the withdrawal) every round.
    assert interrupted == ROUNDS


def enrol_api(client: Client, slug: str, external_id: str) -> Any:
    return client.post(
        f"/api/v1/studies/{slug}/enrol",
        data=json.dumps({"consent": True, "external_id": external_id}),
        content_type="application/json",
    )


@pytest.mark.django_db
def test_withdrawal_is_sticky_until_staff_reinstate(postgres: None) -> None:
    study = make_study(slug="sticky", n_events=2, n_timepoints=1)
    analyst = User.objects.create_user("ana")
    StudyMembership.objects.create(study=study, user=analyst, role="analyst")
    viewer = User.objects.create_user("vic")
    StudyMembership.objects.create(study=study, user=viewer, role="viewer")
    client = Client()
    first = enrol_api(client, "sticky", "5")
    assert first.status_code == 201
    participant = Participant.objects.get(study=study)
    participant_withdraw(study=study, participant_id=participant.pk, actor=analyst)

    # The id is gone; only its keyed digest stays.
    assert ParticipantIdentity.objects.count() == 0
    (blocked,) = WithdrawnIdentity.objects.all()
    assert blocked.participant_id == participant.pk
    assert len(blocked.digest) == 64 and blocked.digest != "5"

    again = enrol_api(client, "sticky", "5")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "withdrawn"
    page = client.post("/s/sticky/?sona_id=5", {"consent": "yes", "sona_id": "5"})
    assert page.status_code == 409
    assert "You have withdrawn from this study" in page.content.decode()
    french = client.post("/s/sticky/", {"consent": "yes", "sona_id": "5", "lang": "fr"})
    assert "Vous vous êtes retiré·e de cette étude" in french.content.decode()
    assert Participant.objects.filter(study=study).count() == 1
    # Another id still enrols.
    assert enrol_api(client, "sticky", "6").status_code == 201

    # A viewer may not reinstate; an analyst may (audited).
    as_viewer = Client()
    as_viewer.force_login(viewer)
    url = f"/dashboard/s/sticky/participants/{participant.pk}/reinstate/"
    assert as_viewer.post(url).status_code == 403
    assert WithdrawnIdentity.objects.count() == 1
    as_analyst = Client()
    as_analyst.force_login(analyst)
    shown = as_analyst.get(f"/dashboard/s/sticky/participants/{participant.pk}/")
    assert 'id="reinstate"' in shown.content.decode()
    assert as_analyst.post(url).status_code == 302
    assert WithdrawnIdentity.objects.count() == 0
    entry = AuditEntry.objects.get(action="participant.reinstate")
    assert (entry.actor_name, entry.study, entry.target) == ("ana", "sticky", f"P{participant.pk}")
    assert entry.detail == {"identities": 1}
    shown = as_analyst.get(f"/dashboard/s/sticky/participants/{participant.pk}/")
    assert 'id="reinstate"' not in shown.content.decode()

    back = enrol_api(client, "sticky", "5")
    assert back.status_code == 201
    assert Participant.objects.filter(study=study).count() == 3
    assert Participant.objects.get(identity__external_id="5").pk != participant.pk
