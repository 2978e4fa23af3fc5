"""Arbitrary JSON at the participant endpoints: never a 5xx, rows written only on a 201."""

import json
import uuid
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.factories import make_study
from trials.models import Participant, Response, Session, Study
from trials.services.enrolment import study_enrol
from trials.services.responses import steps_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # no .hypothesis folder in the shared tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-5, max_value=120)
    | st.floats()  # NaN and infinities too: json.dumps writes them, JSON refuses them
    | st.text(max_size=40)
    | st.uuids().map(str)
    | st.datetimes().map(lambda d: d.isoformat())
    | st.sampled_from(["e1", "br", "e2", "ebr1", "memory", "PR1", "A01", "A02", ""])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["client_id", "event", "phase", "value", "rt_ms", "onset_at"]
keys = st.sampled_from(FIELDS) | st.text(max_size=12)


def next_step_body(session: Session) -> dict[str, Any]:
    """A valid answer to the session's next step (so that some examples are 201)."""
    session.refresh_from_db()
    steps = steps_of(session)
    if session.step_index >= len(steps):
        return {}
    step = steps[session.step_index]
    value = 40
    if step.phase == "br":
        value = session.trials.get(event_id=step.event_id).br or 0
    return {
        "client_id": str(uuid.uuid4()),
        "event": step.code,
        "phase": step.phase,
        "value": value,
        "rt_ms": 2500,
    }


def assert_error_shape(res: Any) -> None:
    body = res.json()
    assert list(body) == ["error"], body
    assert isinstance(body["error"]["code"], str)
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["fields"], dict)


@pytest.fixture
def study() -> Study:
    return make_study(n_events=3, n_practice=1)


@pytest.fixture
def session(study: Study) -> Session:
    """One session for every example of a test (the function-scoped health check is off)."""
    return study_enrol(study=study).session


@FUZZ
@given(data=st.data())
def test_arbitrary_json_at_the_responses_endpoint(
    client: Client, session: Session, data: st.DataObject
) -> None:
    kind = data.draw(st.sampled_from(["any", "object", "mutated"]), label="kind")
    if kind == "any":
        body = data.draw(json_values, label="body")
    elif kind == "object":
        body = data.draw(st.dictionaries(keys, json_values, max_size=8), label="body")
    else:
        overrides = data.draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=2))
        dropped = data.draw(st.sets(st.sampled_from(FIELDS), max_size=1), label="dropped")
        body = {**next_step_body(session), **overrides}
        for name in dropped:
            body.pop(name, None)
    before = Response.objects.count()

    res = client.post(
        f"/api/v1/sessions/{session.token}/responses",
        data=json.dumps(body),
        content_type="application/json",
    )

    assert res.status_code < 500, (body, res.content)
    after = Response.objects.count()
    assert after == before + (1 if res.status_code == 201 else 0), (body, res.status_code)
    if res.status_code >= 400:
        assert_error_shape(res)


ENROL_KEYS = st.sampled_from(["consent", "external_id", "params", "arm", "language"])


@settings(FUZZ, max_examples=80)
@given(body=st.dictionaries(ENROL_KEYS | st.text(max_size=8), json_values, max_size=6))
def test_arbitrary_json_at_the_enrol_endpoint(client: Client, study: Study, body: Any) -> None:
    cache.clear()  # the enrol throttle (120/min) would answer 429 to later examples
    before = Participant.objects.count()

    res = client.post(
        f"/api/v1/studies/{study.slug}/enrol",
        data=json.dumps(body),
        content_type="application/json",
    )

    assert res.status_code < 500, (body, res.content)
    grew = Participant.objects.count() - before
    assert grew == (1 if res.status_code == 201 else 0), (body, res.status_code)
    if res.status_code >= 400:
        assert_error_shape(res)
