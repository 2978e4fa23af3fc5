"""POST /api/v1/sessions/<token>/responses: stored once, in order, bad input refused cleanly."""

import json
import threading
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Response, Session, Trial
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.usefixtures("postgres")

ONSET = "2026-01-05T10:00:00.250000+00:00"


@pytest.fixture
def session() -> Session:
    """Steps: PR1 e1, PR1 br, then e1 + br of three events, then e2 of each (11 steps)."""
    return study_enrol(study=make_study(n_events=3, n_practice=1)).session


def snapshot(session: Session) -> tuple[Any, ...]:
    """Everything an answer may write: rows, the session's progress, the trials' base rates."""
    return (
        list(Response.objects.order_by("pk").values_list("pk", "phase", "value")),
        Session.objects.values_list(
            "step_index", "status", "started_at", "last_activity_at", "completed_at"
        ).get(pk=session.pk),
        list(Trial.objects.order_by("pk").values_list("br", "planned_valence")),
    )


def assert_error(res: Any, status: int, code: str, fields: set[str] | None = None) -> dict:
    """The one error shape of DESIGN.md, with its code and (optionally) the fields named."""
    assert res.status_code == status, res.content
    body = res.json()
    assert list(body) == ["error"]
    error = body["error"]
    assert {"code", "message", "fields"} <= set(error)
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    if fields is not None:
        assert set(error["fields"]) == fields
    return error


def first_event(session: Session) -> str:
    return str(session.plan["order1"][0][1])


# --- stored --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_e1_is_stored_and_answered_with_the_base_rate(
    api: ParticipantApi, session: Session
) -> None:
    cid = str(uuid.uuid4())

    res = api.respond(
        session.token, event="PR1", phase="e1", value=35, rt_ms=1234, client_id=cid, onset_at=ONSET
    )

    assert res.status_code == 201
    row = Response.objects.get()
    assert res.json() == {
        "id": row.pk,
        "client_id": cid,
        "event": "PR1",
        "phase": "e1",
        "value": 35,
        "rt_ms": 1234,
        "onset_at": ONSET,
        "received_at": row.received_at.isoformat(),
        "progress": {"done": 1, "total": 11},
        "br": 50,
    }
    assert (row.session_id, row.event.code, row.phase, row.value, row.rt_ms) == (
        session.pk,
        "PR1",
        "e1",
        35,
        1234,
    )
    assert row.onset_at.isoformat() == ONSET
    assert str(row.client_id) == cid
    session.refresh_from_db()
    assert (session.step_index, session.status) == (1, "in_progress")
    assert session.started_at == session.last_activity_at == row.received_at


@pytest.mark.django_db
def test_other_phases_carry_no_br(api: ParticipantApi, session: Session) -> None:
    api.answer(session.token, 1)

    res = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=100, onset_at=None)

    assert res.status_code == 201
    body = res.json()
    assert "br" not in body
    assert (body["phase"], body["value"], body["rt_ms"], body["onset_at"]) == ("br", 50, 100, None)
    assert body["progress"] == {"done": 2, "total": 11}


@pytest.mark.django_db
def test_same_client_id_again_returns_the_same_row(api: ParticipantApi, session: Session) -> None:
    cid = str(uuid.uuid4())
    first = api.respond(session.token, event="PR1", phase="e1", value=35, client_id=cid)
    before = snapshot(session)

    again = api.respond(session.token, event="PR1", phase="e1", value=35, client_id=cid)
    api.answer(session.token, 3)
    later = api.respond(session.token, event="PR1", phase="e1", value=35, client_id=cid)

    assert first.status_code == 201
    assert (again.status_code, later.status_code) == (200, 200)
    assert again.json() == later.json() == first.json()
    assert snapshot(session)[0][:1] == before[0]
    assert Response.objects.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changed",
    [{"value": 60}, {"rt_ms": 999}, {"phase": "br", "value": 50}, {"event": "A01"}],
)
def test_same_client_id_with_another_answer_is_refused(
    api: ParticipantApi, session: Session, changed: dict[str, Any]
) -> None:
    """A client bug (one client_id for two answers) is a 409, not the old row in silence."""
    cid = str(uuid.uuid4())
    first = api.respond(session.token, event="PR1", phase="e1", value=35, rt_ms=2500, client_id=cid)
    assert first.status_code == 201
    before = snapshot(session)
    body = {"event": "PR1", "phase": "e1", "value": 35, "rt_ms": 2500, **changed}
    res = api.respond(session.token, client_id=cid, **body)

    assert_error(res, 409, "client_id_reused", set())
    assert res.json()["error"]["message"] == "This client_id was sent before with another answer."
    assert snapshot(session) == before
    assert Response.objects.get(client_id=cid).value == 35


@pytest.mark.django_db
def test_client_id_of_another_session_is_refused(api: ParticipantApi, session: Session) -> None:
    other = study_enrol(study=session.participant.study).session
    cid = str(uuid.uuid4())
    api.respond(other.token, event="PR1", phase="e1", value=35, client_id=cid)
    before = snapshot(session)

    res = api.respond(session.token, event="PR1", phase="e1", value=35, client_id=cid)

    assert_error(res, 409, "client_id_reused", set())
    assert snapshot(session) == before


# --- order ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_e2_before_the_base_rate_is_out_of_order(api: ParticipantApi, session: Session) -> None:
    api.answer(session.token, 3)  # PR1 e1, PR1 br, e1 of the first event
    event = first_event(session)
    before = snapshot(session)

    res = api.respond(session.token, event=event, phase="e2", value=40)

    assert res.status_code == 409
    assert res.json() == {
        "error": {
            "code": "out_of_order",
            "message": f"'e2' of '{event}' is not the next step.",
            "fields": {},
            "next": {"event": event, "phase": "br"},
        }
    }
    assert snapshot(session) == before


@pytest.mark.django_db
def test_skipping_ahead_is_out_of_order(api: ParticipantApi, session: Session) -> None:
    before = snapshot(session)

    res = api.respond(session.token, event=first_event(session), phase="e1", value=40)

    error = assert_error(res, 409, "out_of_order", set())
    assert error["next"] == {"event": "PR1", "phase": "e1"}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_a_second_tab_cannot_answer_a_stored_step(api: ParticipantApi, session: Session) -> None:
    first = api.respond(session.token, event="PR1", phase="e1", value=35)
    before = snapshot(session)

    second = api.respond(session.token, event="PR1", phase="e1", value=70)

    assert first.status_code == 201
    assert_error(second, 409, "already_answered", set())
    assert snapshot(session) == before
    assert list(Response.objects.values_list("value", flat=True)) == [35]


@pytest.mark.django_db(transaction=True)
def test_two_tabs_racing_on_one_step_store_one_row(session: Session) -> None:
    statuses: list[int] = []
    codes: list[str] = []
    barrier = threading.Barrier(4)

    def tab(value: int) -> None:
        try:
            barrier.wait()
            res = ParticipantApi(Client()).respond(
                session.token, event="PR1", phase="e1", value=value
            )
            statuses.append(res.status_code)
            if res.status_code != 201:
                codes.append(res.json()["error"]["code"])
        finally:
            connection.close()

    threads = [threading.Thread(target=tab, args=(30 + i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(statuses) == [201, 409, 409, 409]
    assert codes == ["already_answered"] * 3
    assert Response.objects.count() == 1
    assert Session.objects.get().step_index == 1


@pytest.mark.django_db
def test_nothing_is_accepted_after_completion(api: ParticipantApi, session: Session) -> None:
    answered = api.answer(session.token)
    assert api.complete(session.token).status_code == 200
    before = snapshot(session)

    for event, phase in [("PR1", "e1"), (first_event(session), "e2"), ("PR1", "memory")]:
        res = api.respond(session.token, event=event, phase=phase, value=40)
        assert_error(res, 409, "session_closed", set())
    # A replay of a stored answer is still recognised (a retry after a lost reply).
    replay = api.respond(
        session.token, event="PR1", phase="e1", value=40, client_id=answered[0]["client_id"]
    )
    assert replay.status_code == 200
    assert replay.json() == answered[0]
    assert snapshot(session) == before


@pytest.mark.django_db
def test_an_abandoned_session_takes_no_answer(api: ParticipantApi, session: Session) -> None:
    Session.objects.filter(pk=session.pk).update(status=Session.Status.ABANDONED)
    before = snapshot(session)

    res = api.respond(session.token, event="PR1", phase="e1", value=40)

    assert_error(res, 409, "session_closed", set())
    assert snapshot(session) == before
    assert_error(api.complete(session.token), 409, "session_closed", set())


@pytest.mark.django_db
def test_a_withdrawn_participant_is_refused(api: ParticipantApi, session: Session) -> None:
    session.participant.withdrawn_at = timezone.now()
    session.participant.save()
    before = snapshot(session)

    res = api.respond(session.token, event="PR1", phase="e1", value=40)

    assert_error(res, 409, "withdrawn", set())
    assert snapshot(session) == before


# --- bad input -----------------------------------------------------------------------------


def good_body() -> dict[str, Any]:
    """A valid answer to the first step of the `session` fixture."""
    return {
        "client_id": str(uuid.uuid4()),
        "event": "PR1",
        "phase": "e1",
        "value": 40,
        "rt_ms": 1500,
        "onset_at": ONSET,
    }


BAD_FIELDS = [
    ("value", 2, "invalid", {"value"}),
    ("value", 78, "invalid", {"value"}),
    ("value", -1, "invalid", {"value"}),
    ("value", 12.5, "invalid", {"value"}),
    ("value", "abc", "invalid", {"value"}),
    ("value", "", "invalid", {"value"}),
    ("value", None, "invalid", {"value"}),
    ("value", True, "invalid", {"value"}),
    ("value", [40], "invalid", {"value"}),
    ("value", {"v": 40}, "invalid", {"value"}),
    ("value", 10**20, "invalid", {"value"}),
    ("rt_ms", -5, "invalid", {"rt_ms"}),
    ("rt_ms", 1.5, "invalid", {"rt_ms"}),
    ("rt_ms", 10**12, "invalid", {"rt_ms"}),
    ("client_id", "not-a-uuid", "invalid", {"client_id"}),
    ("client_id", 12, "invalid", {"client_id"}),
    ("onset_at", "yesterday", "invalid", {"onset_at"}),
    ("onset_at", "2026-13-45T99:00:00Z", "invalid", {"onset_at"}),
    ("event", "ZZZ", "invalid", {"event"}),
    ("event", "E" * 33, "invalid", {"event"}),
    ("event", "PR\u00001", "invalid", {"event"}),
    ("event", "", "invalid", {"event"}),
    ("phase", "e3", "invalid", {"phase"}),
    ("phase", "E1", "invalid", {"phase"}),
    ("phase", "memory", "invalid", {"phase"}),  # a phase this study does not collect
    ("phase", "ratings", "invalid", {"phase"}),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "value", "code", "fields"), BAD_FIELDS)
def test_bad_field_is_refused_and_nothing_written(
    api: ParticipantApi, session: Session, field: str, value: Any, code: str, fields: set[str]
) -> None:
    before = snapshot(session)
    body = {**good_body(), field: value}

    res = api.post_raw(session.token, json.dumps(body))

    assert_error(res, 400, code, fields)
    assert snapshot(session) == before


@pytest.mark.django_db
def test_out_of_range_message_names_the_range(api: ParticipantApi, session: Session) -> None:
    res = api.post_raw(session.token, json.dumps({**good_body(), "value": 78}))

    assert res.json() == {
        "error": {
            "code": "invalid",
            "message": "value must be a whole number from 3 to 77.",
            "fields": {"value": ["Must be between 3 and 77."]},
        }
    }


@pytest.mark.django_db
@pytest.mark.parametrize("value", [3, 77])
def test_scale_ends_are_accepted(api: ParticipantApi, session: Session, value: int) -> None:
    res = api.post_raw(session.token, json.dumps({**good_body(), "value": value}))

    assert res.status_code == 201
    assert Response.objects.get().value == value


@pytest.mark.django_db
@pytest.mark.parametrize("missing", ["client_id", "event", "phase", "value", "rt_ms"])
def test_missing_field_is_refused(api: ParticipantApi, session: Session, missing: str) -> None:
    before = snapshot(session)
    body = good_body()
    del body[missing]

    res = api.post_raw(session.token, json.dumps(body))

    error = assert_error(res, 400, "invalid", {missing})
    assert error["fields"] == {missing: ["This field is required."]}
    assert snapshot(session) == before


@pytest.mark.django_db
def test_onset_at_is_optional(api: ParticipantApi, session: Session) -> None:
    body = good_body()
    del body["onset_at"]

    res = api.post_raw(session.token, json.dumps(body))

    assert res.status_code == 201
    assert Response.objects.get().onset_at is None


@pytest.mark.django_db
def test_empty_object_names_every_required_field(api: ParticipantApi, session: Session) -> None:
    res = api.post_raw(session.token, "{}")

    assert_error(res, 400, "invalid", {"client_id", "event", "phase", "value", "rt_ms"})
    assert snapshot(session)[0] == []


RAW_BODIES = [
    # Python's json would read these; JSON has no NaN or Infinity.
    ('{"client_id": "%s", "event": "PR1", "phase": "e1", "value": NaN, "rt_ms": 900}', 400),
    ('{"client_id": "%s", "event": "PR1", "phase": "e1", "value": Infinity, "rt_ms": 9}', 400),
    ('{"client_id": "%s", "event": "PR1", "phase": "e1", "value": 40, "rt_ms": -Infinity}', 400),
    ('{"client_id": "%s", "event": "PR1", "phase": "e1", "value": 40', 400),
    ("not json at all %s", 400),
    ('["%s"]', 400),
    ('"%s"', 400),
    ("null%s", 400),
    ("%s", 400),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("template", "status"), RAW_BODIES)
def test_malformed_json_is_refused(
    api: ParticipantApi, session: Session, template: str, status: int
) -> None:
    before = snapshot(session)
    body = template % (str(uuid.uuid4()) if "client_id" in template else "")

    res = api.post_raw(session.token, body)

    error = assert_error(res, status, res.json()["error"]["code"])
    assert error["code"] in {"invalid", "parse_error"}
    assert snapshot(session) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000,  # deeper than Python's recursion limit: was a RecursionError (500)
        b'{"a":' * 800,
        b"\xff\xfe{}",  # not UTF-8
        b'{"client_id": "\xc3\x28"}',
        b'\xef\xbb\xbf{"value": 40}',  # a byte-order mark
    ],
)
def test_undecodable_bodies_are_parse_errors(
    api: ParticipantApi, session: Session, body: bytes
) -> None:
    before = snapshot(session)

    assert_error(api.post_raw(session.token, body), 400, "parse_error", set())
    assert snapshot(session) == before


@pytest.mark.django_db
def test_invalid_json_is_a_parse_error(api: ParticipantApi, session: Session) -> None:
    res = api.post_raw(session.token, '{"value": ')

    assert_error(res, 400, "parse_error", set())


@pytest.mark.django_db
def test_nan_is_a_parse_error(api: ParticipantApi, session: Session) -> None:
    body = json.dumps({**good_body(), "value": float("nan")})
    assert "NaN" in body

    res = api.post_raw(session.token, body)

    assert_error(res, 400, "parse_error", set())
    assert snapshot(session)[0] == []


@pytest.mark.django_db
def test_body_over_4096_bytes_is_413(api: ParticipantApi, session: Session) -> None:
    before = snapshot(session)
    body = json.dumps({**good_body(), "padding": "x" * 4096})
    assert len(body.encode()) > 4096

    res = api.post_raw(session.token, body)

    assert_error(res, 413, "too_large", set())
    assert snapshot(session) == before


@pytest.mark.django_db
def test_body_of_exactly_4096_bytes_is_read(api: ParticipantApi, session: Session) -> None:
    body = json.dumps({**good_body(), "padding": ""})
    body = body[:-2] + "x" * (4096 - len(body.encode())) + '"}'
    assert len(body.encode()) == 4096

    assert api.post_raw(session.token, body).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_wrong_content_type_is_415(
    api: ParticipantApi, session: Session, content_type: str
) -> None:
    before = snapshot(session)

    res = api.post_raw(session.token, json.dumps(good_body()), content_type=content_type)

    assert_error(res, 415, "unsupported_media_type", set())
    assert snapshot(session) == before


@pytest.mark.django_db
def test_multipart_form_is_415(client: Client, session: Session) -> None:
    res = client.post(f"/api/v1/sessions/{session.token}/responses", good_body())

    assert_error(res, 415, "unsupported_media_type", set())
    assert Response.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "token", ["A" * 32, "nope", "A" * 65, "%00", "abc%00def", "%C3%A9t%C3%A9", "a.b", "%20"]
)
def test_unknown_or_malformed_token_is_404(
    api: ParticipantApi, session: Session, token: str
) -> None:
    res = api.post_raw(token, json.dumps(good_body()))

    assert_error(res, 404, "not_found", set())
    assert_error(api.complete(token), 404, "not_found", set())
    assert Response.objects.count() == 0


@pytest.mark.django_db
def test_get_on_the_responses_endpoint_is_405(client: Client, session: Session) -> None:
    res = client.get(f"/api/v1/sessions/{session.token}/responses")

    assert_error(res, 405, "method_not_allowed", set())


# --- the base-rate screen ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("value", "rt_ms", "field"), [(49, 2500, "value"), (50, 99, "rt_ms")])
def test_br_screen_must_match_what_was_shown(
    api: ParticipantApi, session: Session, value: int, rt_ms: int, field: str
) -> None:
    api.answer(session.token, 1)
    before = snapshot(session)

    res = api.respond(session.token, event="PR1", phase="br", value=value, rt_ms=rt_ms)

    assert_error(res, 400, "invalid", {field})
    assert snapshot(session) == before


@pytest.mark.django_db
def test_br_screen_messages(api: ParticipantApi, session: Session) -> None:
    api.answer(session.token, 1)

    wrong = api.respond(session.token, event="PR1", phase="br", value=49).json()
    short = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=99).json()
    exact = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=100)

    assert wrong["error"]["fields"] == {"value": ["Must be the base rate displayed (50)."]}
    assert short["error"]["fields"] == {"rt_ms": ["At least 100."]}
    assert exact.status_code == 201


@pytest.mark.django_db
def test_br_view_time_uses_the_study_setting(api: ParticipantApi) -> None:
    session = study_enrol(study=make_study(n_events=1, n_practice=1, min_br_view_ms=2000)).session
    api.answer(session.token, 1)

    short = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=1999)
    ok = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=2000)

    assert_error(short, 400, "invalid", {"rt_ms"})
    assert ok.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("phase", "low", "high"),
    [("confidence", 1, 6), ("ebr1", 3, 77)],
)
def test_ranges_of_optional_phases(api: ParticipantApi, phase: str, low: int, high: int) -> None:
    study = make_study(n_events=1, n_practice=1, collect_ebr=True, collect_confidence=True)
    session = study_enrol(study=study).session
    steps = [s["phase"] for s in api.state(session.token).json()["steps"]]
    api.answer(session.token, steps.index(phase))

    for bad in (low - 1, high + 1):
        res = api.respond(session.token, event="PR1", phase=phase, value=bad)
        assert_error(res, 400, "invalid", {"value"})
    assert api.respond(session.token, event="PR1", phase=phase, value=high).status_code == 201


@pytest.mark.django_db
def test_a_study_with_its_own_scale(api: ParticipantApi) -> None:
    session = study_enrol(study=make_study(n_events=1, scale_min=0, scale_max=100)).session

    assert api.respond(session.token, event="PR1", phase="e1", value=0).status_code == 201
    res = api.respond(session.token, event="PR1", phase="br", value=50, rt_ms=100)
    assert res.status_code == 201
