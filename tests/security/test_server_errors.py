"""Inputs that gave 500s, and the API's own 500: the documented JSON error shape."""

import uuid
from typing import Any

import pytest
from django.test import Client

from tests.dashboard.builders import member
from tests.factories import make_study
from trials.models import Participant, ParticipantIdentity, Response, StudyMembership
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db]

# JSON text spelling a lone (unpaired) surrogate: valid JSON, not encodable as UTF-8.
LONE = "\\ud800"


def raw_post(client: Client, path: str, text: str) -> Any:
    return client.post(path, data=text.encode("ascii"), content_type="application/json")


def test_lone_surrogate_in_phase_is_a_400(postgres: None) -> None:
    study = make_study(slug="surr", n_events=2, n_timepoints=1)
    session = study_enrol(study=study).session
    body = (
        f'{{"client_id": "{uuid.uuid4()}", "event": "PR1", "phase": "{LONE}", '
        '"value": 40, "rt_ms": 900, "onset_at": null}'
    )
    response = raw_post(Client(), f"/api/v1/sessions/{session.token}/responses", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "parse_error"
    assert error["message"] == "JSON parse error - a string holds a lone surrogate."
    assert Response.objects.filter(session=session).count() == 0


def test_lone_surrogate_in_event_and_client_id_are_400s(postgres: None) -> None:
    study = make_study(slug="surr2", n_events=2, n_timepoints=1)
    session = study_enrol(study=study).session
    for body in (
        f'{{"client_id": "{uuid.uuid4()}", "event": "A{LONE}", "phase": "e1", '
        '"value": 40, "rt_ms": 900}',
        f'{{"client_id": "{LONE}", "event": "PR1", "phase": "e1", "value": 40, "rt_ms": 900}}',
    ):
        response = raw_post(Client(), f"/api/v1/sessions/{session.token}/responses", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "parse_error"
    assert Response.objects.filter(session=session).count() == 0


def test_surrogate_key_in_enrol_params_is_a_400(postgres: None) -> None:
    study = make_study(slug="surr3", n_events=2, n_timepoints=1)
    for body in (
        f'{{"consent": true, "external_id": "x1", "params": {{"{LONE}": "v"}}}}',
        f'{{"consent": true, "external_id": "x1", "params": {{"k": "{LONE}"}}}}',
        f'{{"consent": true, "external_id": "x{LONE}"}}',
    ):
        response = raw_post(Client(), "/api/v1/studies/surr3/enrol", body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "parse_error"
    assert Participant.objects.filter(study=study).count() == 0
    assert ParticipantIdentity.objects.count() == 0


def test_members_form_with_a_membership_that_is_not_a_number_is_a_404() -> None:
    study = make_study(slug="members", n_events=2, n_timepoints=1)
    owner = member(study, "owner")
    viewer = member(study, "viewer")
    client = Client()
    client.force_login(owner)
    for value in ("abc", "1e3", "-1", "٣", "9" * 30, ""):
        for action in ("role", "remove"):
            response = client.post(
                "/dashboard/s/members/setup/members/",
                {"action": action, "membership": value, "role": "owner"},
            )
            assert response.status_code == 404, (action, value)
    roles = dict(StudyMembership.objects.filter(study=study).values_list("user_id", "role"))
    assert roles == {owner.pk: "owner", viewer.pk: "viewer"}


def test_an_api_500_answers_the_json_error_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    study = make_study(slug="boom", n_events=2, n_timepoints=1)
    session = study_enrol(study=study).session

    def explode(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("trials.api.participant.session_state", explode)
    client = Client(raise_request_exception=False)
    response = client.get(f"/api/v1/sessions/{session.token}")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "error": {"code": "server_error", "message": "Server error.", "fields": {}}
    }
    # Outside the API, Django's HTML page.
    monkeypatch.setattr("trials.views.session_for_token", lambda token: explode())
    page = client.get(f"/t/{session.token}/")
    assert page.status_code == 500
    assert page["Content-Type"].startswith("text/html")
