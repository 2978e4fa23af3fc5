"""Clinician ratings: who may enter them, every item checked, not-reached timepoints
refused, an edit keeps the old values (who, when) in the audit log; nothing stored on error."""

import json
from typing import Any

import pytest

from audit.models import AuditEntry
from audit.services import audit_verify
from instruments.models import InstrumentScore, ItemAnswer, Rating
from tests.api.conftest import Researchers
from trials.models import Participant, Session, Study

URL = "/api/v1/studies/golden/ratings/"
pytestmark = pytest.mark.django_db


def _madrs(values: list[int]) -> dict[str, int]:
    return {f"madrs_{n}": v for n, v in zip(range(1, 11), values, strict=True)}


def _post(staff: Researchers, who: str, body: dict[str, Any]) -> Any:
    return staff.client(who).post(URL, data=json.dumps(body), content_type="application/json")


def _first_participant(study: Study) -> Participant:
    participant = study.participants.order_by("id").first()
    assert participant is not None
    return participant


def _nothing_stored() -> None:
    assert Rating.objects.count() == 0
    assert ItemAnswer.objects.count() == 0
    assert InstrumentScore.objects.count() == 0
    assert not AuditEntry.objects.filter(action__startswith="rating.").exists()


def test_an_analyst_enters_madrs_and_it_is_scored_on_entry(staff: Researchers) -> None:
    participant = _first_participant(staff.study)
    items = _madrs([4, 4, 3, 2, 1, 3, 2, 4, 3, 0])
    response = _post(
        staff,
        "analyst",
        {
            "participant": participant.pk,
            "timepoint": "baseline",
            "instrument": "madrs",
            "items": items,
            "rated_at": "2025-03-03T11:00:00Z",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body == {
        "participant": participant.pk,
        "timepoint": "baseline",
        "instrument": "madrs",
        "items": items,
        "rated_at": "2025-03-03T11:00:00Z",
        "created": True,
        "total": 26.0,
        "status": "complete",
    }
    session = Session.objects.get(participant=participant, timepoint__label="baseline")
    score = InstrumentScore.objects.get(session=session, instrument__code="madrs")
    assert (score.total, score.n_answered, score.n_missing, score.status) == (
        26.0,
        10,
        0,
        "complete",
    )
    assert set(ItemAnswer.objects.values_list("source", flat=True)) == {"clinician"}
    entry = AuditEntry.objects.get(action="rating.create")
    assert entry.actor_name == "analyst"
    assert entry.detail["items"] == items


def test_an_edit_keeps_the_previous_values_with_who_and_when(staff: Researchers) -> None:
    participant = _first_participant(staff.study)
    first = _madrs([4, 4, 3, 2, 1, 3, 2, 4, 3, 0])
    body = {
        "participant": participant.pk,
        "timepoint": "+4h",
        "instrument": "madrs",
        "items": first,
        "rated_at": "2025-03-03T15:00:00Z",
    }
    assert _post(staff, "analyst", body).status_code == 201
    second = _madrs([2, 2, 1, 1, 1, 1, 1, 2, 1, 0])
    response = _post(staff, "owner", {**body, "items": second, "rated_at": "2025-03-03T15:30:00Z"})
    assert response.status_code == 200
    assert response.json()["created"] is False
    assert response.json()["total"] == 12.0
    assert Rating.objects.count() == 1
    assert ItemAnswer.objects.count() == 10
    assert dict(ItemAnswer.objects.values_list("item", "value")) == second
    edit = AuditEntry.objects.get(action="rating.update")
    assert edit.actor_name == "owner"
    assert edit.study == "golden"
    assert edit.target == f"participant {participant.pk} +4h madrs"
    assert edit.detail["previous"] == {"rated_at": "2025-03-03T15:00:00+00:00", "items": first}
    assert edit.detail["items"] == second
    assert edit.at is not None
    create = AuditEntry.objects.get(action="rating.create")
    assert create.actor_name == "analyst" and create.at <= edit.at
    assert InstrumentScore.objects.get().total == 12.0
    assert audit_verify().broken_at is None  # the chain still verifies


@pytest.mark.parametrize(
    ("who", "status"),
    [("viewer", 403), ("stranger", 404), ("owner_read", 403), (None, 401)],
)
def test_who_cannot_enter_a_rating(staff: Researchers, who: str | None, status: int) -> None:
    participant = _first_participant(staff.study)
    body = {
        "participant": participant.pk,
        "timepoint": "baseline",
        "instrument": "madrs",
        "items": _madrs([1] * 10),
    }
    response = staff.client(who).post(URL, data=json.dumps(body), content_type="application/json")
    assert response.status_code == status
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    _nothing_stored()


def test_a_viewer_cannot_edit_either(staff: Researchers) -> None:
    participant = _first_participant(staff.study)
    body = {
        "participant": participant.pk,
        "timepoint": "baseline",
        "instrument": "madrs",
        "items": _madrs([1] * 10),
    }
    assert _post(staff, "analyst", body).status_code == 201
    response = _post(staff, "viewer", {**body, "items": _madrs([6] * 10)})
    assert response.status_code == 403
    assert set(ItemAnswer.objects.values_list("value", flat=True)) == {1}
    assert not AuditEntry.objects.filter(action="rating.update").exists()


@pytest.mark.parametrize(
    ("change", "status", "field", "message"),
    [
        (
            {"items": {**_madrs([1] * 10), "madrs_3": 7}},
            400,
            "items.madrs_3",
            "7 is not one of this item's options (0, 1, 2, 3, 4, 5, 6).",
        ),
        (
            {"items": {**_madrs([1] * 10), "madrs_3": -1}},
            400,
            "items.madrs_3",
            "-1 is not one of this item's options (0, 1, 2, 3, 4, 5, 6).",
        ),
        (
            {"items": {**_madrs([1] * 10), "madrs_3": "2"}},
            400,
            "items.madrs_3",
            "The answer must be a whole number.",
        ),
        (
            {"items": {k: v for k, v in _madrs([1] * 10).items() if k != "madrs_10"}},
            400,
            "items.madrs_10",
            "This item is required: it cannot be skipped.",
        ),
        (
            {"items": {**_madrs([1] * 10), "madrs_11": 1}},
            400,
            "items.madrs_11",
            "'madrs_11' is not an item of madrs.",
        ),
        (
            {"items": {**_madrs([1] * 10), "madrs_4": None}},
            400,
            "items.madrs_4",
            "This item is required: it cannot be skipped.",
        ),
        ({"items": []}, 400, "items", "An object {item code: value}."),
        ({"instrument": "phq9"}, 400, "instrument", "Not a clinician-rated instrument."),
        (
            {"instrument": "hamd"},
            400,
            "instrument",
            "Attach it to the timepoint first (study setup).",
        ),
        ({"timepoint": "week 9"}, 404, "timepoint", "Not a timepoint label of this study."),
        ({"participant": 999999}, 404, "participant", "Not a participant of this study."),
        (
            {"participant": "1"},
            400,
            "participant",
            "The participant's id (the exports' `participant`).",
        ),
        ({"rated_at": "yesterday"}, 400, "rated_at", "ISO 8601, e.g. 2026-03-01T10:30:00Z."),
        ({"rated_at": "2999-01-01T00:00:00Z"}, 400, "rated_at", "Not after the present."),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    staff: Researchers, change: dict[str, Any], status: int, field: str, message: str
) -> None:
    participant = _first_participant(staff.study)
    body = {
        "participant": participant.pk,
        "timepoint": "baseline",
        "instrument": "madrs",
        "items": _madrs([1] * 10),
        **change,
    }
    response = _post(staff, "analyst", body)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["fields"][field] == [message]
    _nothing_stored()


def test_a_timepoint_not_reached_is_refused(staff: Researchers) -> None:
    participant = _first_participant(staff.study)
    Session.objects.filter(participant=participant, timepoint__label="+4h").delete()
    response = _post(
        staff,
        "analyst",
        {
            "participant": participant.pk,
            "timepoint": "+4h",
            "instrument": "madrs",
            "items": _madrs([1] * 10),
        },
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "timepoint_not_reached"
    assert error["message"] == (
        f"Participant {participant.pk} has not reached '+4h' (no session there yet): "
        "a rating for a visit that has not started is refused."
    )
    _nothing_stored()


def test_a_withdrawn_participant_is_refused(staff: Researchers) -> None:
    from django.utils import timezone

    participant = _first_participant(staff.study)
    Participant.objects.filter(pk=participant.pk).update(withdrawn_at=timezone.now())
    response = _post(
        staff,
        "analyst",
        {
            "participant": participant.pk,
            "timepoint": "baseline",
            "instrument": "madrs",
            "items": _madrs([1] * 10),
        },
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "withdrawn"
    _nothing_stored()
