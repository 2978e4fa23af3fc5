"""A participant token opens its own session and nothing else: no other session, no researcher
data, no dashboard."""

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from tests.factories import make_study
from trials.models import Response, Session, Study, StudyMembership
from trials.services.enrolment import Enrolment, study_enrol
from trials.services.responses import response_record, steps_of

pytestmark = [pytest.mark.django_db]

RESEARCHER_GETS = [
    "/api/v1/studies/",
    "/api/v1/studies/{slug}/",
    "/api/v1/studies/{slug}/participants/",
    "/api/v1/studies/{slug}/sessions/",
    "/api/v1/studies/{slug}/trials/",
    "/api/v1/studies/{slug}/trials/?format=csv",
    "/api/v1/studies/{slug}/responses/",
    "/api/v1/studies/{slug}/scores/",
    "/api/v1/studies/{slug}/summary/",
    "/api/v1/studies/{slug}/codebook/",
]
RESEARCHER_POSTS = ["/api/v1/studies/{slug}/imports/", "/api/v1/studies/{slug}/rescore"]
DASHBOARD = [
    "/dashboard/",
    "/dashboard/s/{slug}/",
    "/dashboard/s/{slug}/sessions/",
    "/dashboard/s/{slug}/results/",
    "/dashboard/s/{slug}/overview.json",
    "/dashboard/tokens/",
]


@pytest.fixture
def study(db: None) -> Study:
    return make_study(slug="scope", n_events=2, arms=("main",), n_timepoints=1)


def answer_first_step(enrolment: Enrolment, value: int = 40) -> Response:
    session = enrolment.session
    step = steps_of(session)[0]
    return response_record(
        token=session.token,
        client_id=uuid.uuid4(),
        event=step.code,
        phase=step.phase,
        value=value,
        rt_ms=1000,
        onset_at=None,
    ).response


def snapshot() -> list[tuple[Any, ...]]:
    return list(
        Response.objects.order_by("id").values_list("id", "session_id", "phase", "value")
    ) + list(Session.objects.order_by("id").values_list("id", "step_index", "status"))


def test_a_token_reaches_no_other_session(study: Study) -> None:
    a, b = study_enrol(study=study), study_enrol(study=study)
    b_row = answer_first_step(b, value=33)
    before = snapshot()
    client = Client(REMOTE_ADDR="198.51.100.1")
    # A's token also rides along as a credential header: it must not matter.
    authed = Client(REMOTE_ADDR="198.51.100.1", HTTP_AUTHORIZATION=f"Bearer {a.session.token}")

    # B's answer replayed under A's token: refused, and nothing of B's row comes back.
    replay = client.post(
        f"/api/v1/sessions/{a.session.token}/responses",
        data=json.dumps(
            {
                "client_id": str(b_row.client_id),
                "event": steps_of(a.session)[0].code,
                "phase": "e1",
                "value": 40,
                "rt_ms": 900,
            }
        ),
        content_type="application/json",
    )
    assert replay.status_code == 409
    assert replay.json()["error"]["code"] == "client_id_reused"
    assert str(b_row.pk) not in replay.content.decode()
    assert "33" not in replay.content.decode()

    # Tokens are not interchangeable: A's participant token is no session token, A's session
    # token is no return link, and near misses of a token are unknown.
    near = [
        a.session.token.upper(),
        a.session.token.lower(),
        a.session.token[:-1],
        a.session.token + "A",
        a.session.token[1:] + a.session.token[0],
    ]
    for token in [a.participant.token, *[t for t in near if t != a.session.token]]:
        assert authed.get(f"/api/v1/sessions/{token}").status_code == 404
        assert authed.get(f"/t/{token}/").status_code == 404
        posted = authed.post(
            f"/api/v1/sessions/{token}/complete", data="", content_type="application/json"
        )
        assert posted.status_code == 404
    assert client.get(f"/r/{a.session.token}/").status_code == 404

    # A's token sent as a credential on a URL without a token is nothing.
    assert authed.get("/api/v1/sessions/").status_code == 404

    # A's page and state hold A's token only.
    page = client.get(f"/t/{a.session.token}/").content.decode()
    state = client.get(f"/api/v1/sessions/{a.session.token}").content.decode()
    for text in (page, state):
        assert b.session.token not in text and b.participant.token not in text
    assert snapshot() == before


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
def test_a_participant_token_is_no_researcher_credential(study: Study, scheme: str) -> None:
    a = study_enrol(study=study)
    answer_first_step(a)
    assert StudyMembership.objects.count() == 0
    before = snapshot()
    for token in (a.session.token, a.participant.token):
        # One address per token: the failed-authentication throttle (20/min) stays out of it.
        client = Client(
            REMOTE_ADDR=f"198.51.100.{2 if token == a.session.token else 3}",
            HTTP_AUTHORIZATION=f"{scheme} {token}",
        )
        for url in RESEARCHER_GETS:
            response = client.get(url.format(slug=study.slug))
            assert response.status_code == 401, url
            assert response.json()["error"]["code"] in ("not_authenticated", "invalid_token")
            assert a.session.token not in response.content.decode()
        for url in RESEARCHER_POSTS:
            response = client.post(url.format(slug=study.slug), data={})
            assert response.status_code == 401, url
        for url in DASHBOARD:
            response = client.get(url.format(slug=study.slug))
            assert response.status_code == 302, url
            assert response["Location"].startswith("/accounts/login/")
        assert client.get("/admin/").status_code == 302
    assert snapshot() == before


def test_the_participant_browser_session_is_no_researcher_login(study: Study) -> None:
    # The consent form leaves cookies (CSRF, maybe a session): they open nothing.
    client = Client(REMOTE_ADDR="198.51.100.4")
    client.get(f"/s/{study.slug}/")
    consented = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "p1"})
    assert consented.status_code == 302 and consented["Location"].startswith("/t/")
    for url in RESEARCHER_GETS:
        assert client.get(url.format(slug=study.slug)).status_code in (401, 403), url
    for url in DASHBOARD:
        assert client.get(url.format(slug=study.slug)).status_code == 302, url
