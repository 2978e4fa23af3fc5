"""The participant API's lane (common.lane): fewer middleware, the same guarantees.

Requests under /api/v1/sessions/ skip WhiteNoise, sessions, LocaleMiddleware, CSRF,
authentication and messages. Each test compares the lane with the full stack (the same
settings without the lane middleware): the same status, bytes and headers, security headers
included, except the two headers only LocaleMiddleware adds; the Host check and the
token-guessing throttle still apply; everything else still takes the full stack.
"""

import json
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.factories import make_study
from trials.models import Response, Session
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]

LANE = "common.lane.ParticipantApiLaneMiddleware"
FULL_STACK = [m for m in settings.MIDDLEWARE if m != LANE]
LOCALE_ONLY = {"Vary", "Content-Language"}
SECURITY = {
    "Content-Security-Policy",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
}


@pytest.fixture
def session() -> Session:
    return study_enrol(study=make_study(n_events=2, n_practice=1)).session


def _answer(session: Session, **over: Any) -> str:
    body = {
        "client_id": str(uuid.uuid4()),
        "event": "PR1",
        "phase": "e1",
        "value": 40,
        "rt_ms": 900,
        "onset_at": "2026-12-02T10:00:00Z",
    }
    return json.dumps({**body, **over})


def _both(call: Any) -> tuple[Any, Any]:
    """The same request through the lane, then through the full stack."""
    lane = call(Client())
    with override_settings(MIDDLEWARE=FULL_STACK):
        full = call(Client())
    return lane, full


def _headers(res: Any) -> dict[str, str]:
    return dict(res.headers.items())


def _assert_same_but_locale(lane: Any, full: Any) -> None:
    assert (lane.status_code, lane.content) == (full.status_code, full.content)
    lane_h, full_h = _headers(lane), _headers(full)
    assert {k: v for k, v in full_h.items() if k not in LOCALE_ONLY} == lane_h
    assert full_h["Vary"] == "Accept-Language"
    assert full_h["Content-Language"] == "en"
    assert not LOCALE_ONLY & set(lane_h)
    assert set(lane_h) >= SECURITY | {"Content-Type", "Content-Length"}
    assert lane_h["X-Frame-Options"] == "DENY"
    assert lane_h["X-Content-Type-Options"] == "nosniff"
    assert int(lane_h["Content-Length"]) == len(lane.content)
    assert "Set-Cookie" not in lane_h


def test_the_state_and_an_unknown_token_have_the_full_stacks_bytes_and_headers(
    session: Session,
) -> None:
    _assert_same_but_locale(*_both(lambda c: c.get(f"/api/v1/sessions/{session.token}")))
    missing = _both(lambda c: c.get(f"/api/v1/sessions/{'x' * 32}"))
    _assert_same_but_locale(*missing)
    assert missing[0].status_code == 404
    assert missing[0].json()["error"]["code"] == "not_found"


def test_an_answer_and_its_replay_have_the_full_stacks_bytes_and_headers(
    session: Session,
) -> None:
    url = f"/api/v1/sessions/{session.token}/responses"
    body = _answer(session)
    first = Client().post(url, body, content_type="application/json")
    assert first.status_code == 201
    # The replay (same client_id) is answered byte for byte as the first answer, both ways.
    lane, full = _both(lambda c: c.post(url, body, content_type="application/json"))
    _assert_same_but_locale(lane, full)
    assert lane.status_code == 200
    assert lane.content == first.content
    assert Response.objects.filter(session=session).count() == 1


@pytest.mark.parametrize(
    ("over", "status", "code"),
    [
        ({"phase": "br", "value": 50}, 409, "out_of_order"),
        ({"value": 99}, 400, "invalid"),
        ({"value": "forty"}, 400, "invalid"),  # DRF's path: the serializer explains
        ({"client_id": 12}, 400, "invalid"),
    ],
)
def test_refusals_have_the_full_stacks_bytes_and_headers_and_write_nothing(
    session: Session, over: dict[str, Any], status: int, code: str
) -> None:
    url = f"/api/v1/sessions/{session.token}/responses"
    body = _answer(session, **over)
    lane, full = _both(lambda c: c.post(url, body, content_type="application/json"))
    _assert_same_but_locale(lane, full)
    assert lane.status_code == status
    assert lane.json()["error"]["code"] == code
    assert not Response.objects.filter(session=session).exists()


def test_the_lane_answers_in_the_default_language_whatever_the_browser_asks(
    session: Session,
) -> None:
    url = f"/api/v1/sessions/{session.token}/responses"
    body = json.dumps({"event": "PR1"})  # DRF's messages are translated

    def call(c: Client) -> Any:
        return c.post(url, body, content_type="application/json", HTTP_ACCEPT_LANGUAGE="fr")

    lane, full = _both(call)
    assert lane.status_code == full.status_code == 400
    assert lane.json()["error"]["fields"]["client_id"] == ["This field is required."]
    assert full.json()["error"]["fields"]["client_id"] == ["Ce champ est obligatoire."]
    assert full["Content-Language"] == "fr"
    # The next page in the same thread is not left in English by the lane.
    page = Client().get(f"/t/{session.token}/", HTTP_ACCEPT_LANGUAGE="fr")
    assert page["Content-Language"] == "fr"


def test_a_host_outside_allowed_hosts_is_refused_in_the_lane_and_writes_nothing(
    session: Session,
) -> None:
    url = f"/api/v1/sessions/{session.token}/responses"
    res = Client(HTTP_HOST="evil.example").post(
        url, _answer(session), content_type="application/json"
    )
    assert res.status_code == 400
    assert res.json()["error"]["code"] == "invalid"
    assert not Response.objects.filter(session=session).exists()


def test_the_lane_takes_no_cookie_and_sets_none(session: Session) -> None:
    client = Client()
    client.cookies["sessionid"] = "x" * 32
    client.cookies["csrftoken"] = "y" * 32
    url = f"/api/v1/sessions/{session.token}/responses"
    # No CSRF token is needed (token-authorised), and no cookie comes back.
    res = client.post(url, _answer(session), content_type="application/json")
    assert res.status_code == 201
    assert not res.cookies
    complete_url = f"/api/v1/sessions/{session.token}/complete"
    assert "Set-Cookie" not in client.post(complete_url).headers


def test_other_urls_still_take_the_full_stack(session: Session) -> None:
    page = Client().get(f"/t/{session.token}/")
    assert page.status_code == 200
    assert page["Content-Language"] == "en"
    assert "Accept-Language" in page["Vary"]
    enrol = Client().post(
        "/api/v1/studies/nope/enrol", json.dumps({"consent": True}), "application/json"
    )
    assert enrol.status_code == 404
    assert enrol["Content-Language"] == "en"


def test_the_lane_is_placed_after_the_throttle_and_keeps_the_stacks_order() -> None:
    stack = list(settings.MIDDLEWARE)
    lane_at = stack.index(LANE)
    above = stack[:lane_at]
    assert above == [
        "django.middleware.security.SecurityMiddleware",
        "common.csp.ContentSecurityPolicyMiddleware",
        "common.throttle.ParticipantMissThrottleMiddleware",
    ]
    below = stack[lane_at + 1 :]
    kept = list(settings.PARTICIPANT_API_MIDDLEWARE)
    assert kept == [m for m in below if m in kept]  # a subset of the stack, in its order
    assert kept == [
        "django.middleware.common.CommonMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
    ]
