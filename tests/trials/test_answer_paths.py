"""The two ways into POST /responses answer alike.

A plainly valid body (the browser's) is read without DRF (trials.api.participant.
usual_answer); any other body takes DRF's serializer. Both must store the same row and send
the same bytes and headers, for answers, replays and refusals alike. A value sent as the
string "40" (DRF's IntegerField takes it) is how a test reaches the DRF path with a valid
answer.
"""

import json
import uuid
from typing import Any

import pytest

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.api.participant import usual_answer
from trials.models import Response, Session
from trials.services.enrolment import study_enrol

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("postgres")]


@pytest.fixture
def session() -> Session:
    return study_enrol(study=make_study(n_events=2, n_practice=1)).session


def _seen(res: Any) -> tuple[int, bytes, str, str]:
    return res.status_code, res.content, res["Content-Type"], res["Allow"]


def test_an_answer_and_its_replays_are_the_same_bytes_on_both_paths(
    api: ParticipantApi, session: Session
) -> None:
    cid = str(uuid.uuid4())
    first = api.respond(session.token, event="PR1", phase="e1", value=40, client_id=cid)
    plain_replay = api.respond(session.token, event="PR1", phase="e1", value=40, client_id=cid)
    drf_replay = api.respond(session.token, event="PR1", phase="e1", value="40", client_id=cid)

    assert first.status_code == 201
    assert _seen(plain_replay) == _seen(drf_replay)
    assert plain_replay.status_code == 200
    assert plain_replay.content == first.content  # byte for byte, as first returned
    assert first["Allow"] == "POST, OPTIONS"
    assert Response.objects.filter(session=session).count() == 1


def test_a_drf_path_answer_is_stored_like_a_plain_one(
    api: ParticipantApi, session: Session
) -> None:
    plain = api.respond(session.token, event="PR1", phase="e1", value=40).json()
    via_drf = api.respond(session.token, event="PR1", phase="br", value=str(50)).json()

    assert (plain["phase"], plain["value"], plain["progress"]) == (
        "e1",
        40,
        {"done": 1, "total": 8},
    )
    assert (via_drf["phase"], via_drf["value"], via_drf["progress"]) == (
        "br",
        50,
        {"done": 2, "total": 8},
    )
    assert list(plain) == [*list(via_drf), "br"]
    rows = Response.objects.filter(session=session).order_by("id")
    assert [(r.phase, r.value) for r in rows] == [("e1", 40), ("br", 50)]


@pytest.mark.parametrize(
    ("event", "phase", "value", "status"),
    [
        ("PR1", "br", 50, 409),  # out of order
        ("NOPE", "e1", 40, 400),  # no such event
        ("PR1", "e1", 99, 400),  # outside the study's scale (3-77)
    ],
)
def test_refusals_are_the_same_bytes_on_both_paths(
    api: ParticipantApi, session: Session, event: str, phase: str, value: int, status: int
) -> None:
    plain = api.respond(session.token, event=event, phase=phase, value=value)
    via_drf = api.respond(session.token, event=event, phase=phase, value=str(value))

    assert plain.status_code == status
    assert _seen(plain) == _seen(via_drf)
    assert not Response.objects.filter(session=session).exists()


def test_an_unknown_session_is_the_same_404_on_both_paths(api: ParticipantApi) -> None:
    token = "x" * 32
    plain = api.respond(token, event="PR1", phase="e1", value=40)
    via_drf = api.respond(token, event="PR1", phase="e1", value="40")

    assert plain.status_code == 404
    assert _seen(plain) == _seen(via_drf)


class _Request:
    """What usual_answer reads of a request."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        self.body = body
        self.META = {"CONTENT_LENGTH": str(len(body))}
        main, _, params = content_type.partition(";")
        self.content_type = main.strip()
        self.encoding = params.partition("=")[2].strip() or None


GOOD = {
    "client_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "event": "E01",
    "phase": "e2",
    "value": 40,
    "rt_ms": 1200,
    "onset_at": "2026-01-05T11:00:00+01:00",
}


def test_usual_answer_reads_a_plain_body() -> None:
    answer = usual_answer(_Request(json.dumps(GOOD).encode()))  # type: ignore[arg-type]

    assert answer is not None
    assert answer["client_id"] == uuid.UUID(GOOD["client_id"])
    assert (answer["event"], answer["phase"], answer["value"], answer["rt_ms"]) == (
        "E01",
        "e2",
        40,
        1200,
    )
    # Normalised to UTC, as DRF's DateTimeField does.
    assert answer["onset_at"].isoformat() == "2026-01-05T10:00:00+00:00"


@pytest.mark.parametrize(
    "change",
    [
        {"value": "40"},
        {"value": True},
        {"value": 40.0},
        {"value": 40_000},
        {"rt_ms": -1},
        {"rt_ms": 86_400_001},
        {"event": " E01"},
        {"event": ""},
        {"event": "E" * 33},
        {"event": "E\x0001"},
        {"event": "É01"},
        {"event": 1},
        {"phase": "E2"},
        {"phase": ["e2"]},
        {"client_id": 12},
        {"client_id": "not-a-uuid"},
        {"onset_at": "yesterday"},
        {"onset_at": 5},
        {"client_id": None},
    ],
)
def test_anything_not_plainly_valid_is_left_to_drf(change: dict[str, Any]) -> None:
    body = json.dumps({**GOOD, **change}).encode()
    assert usual_answer(_Request(body)) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[1, 2]", "application/json"),
        (b'{"value": NaN}', "application/json"),
        (b"[" * 3000, "application/json"),
        (b"\xff\xfe", "application/json"),
        (json.dumps(GOOD).encode(), "text/plain"),
        (json.dumps(GOOD).encode(), "application/json; charset=latin-1"),
        (json.dumps({**GOOD, "pad": "x" * 5000}).encode(), "application/json"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "rt_ms"}).encode(), "application/json"),
    ],
)
def test_bodies_drf_must_explain_are_left_to_it(body: bytes, content_type: str) -> None:
    assert usual_answer(_Request(body, content_type)) is None  # type: ignore[arg-type]
