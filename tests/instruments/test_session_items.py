"""Questionnaire items as steps of the session (DESIGN.md, participant API): in the plan and
the session state, answered on the responses endpoint with the task's guarantees
(idempotent, in order, checked against the instrument, required items not skippable),
resumed at the exact item, completed, scored and exported."""

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from dashboard.services import participant_withdraw
from instruments.models import Instrument, InstrumentScore, ItemAnswer
from instruments.services import instrument_attach, instrument_import, instruments_load_shipped
from tests.factories import make_study
from tests.trials.conftest import ParticipantApi, _fresh_throttle_cache  # noqa: F401
from tests.trials.test_responses import assert_error
from trials.models import Response, Session, Study
from trials.services.enrolment import study_enrol
from trials.services.responses import steps_of

pytestmark = [pytest.mark.usefixtures("postgres"), pytest.mark.django_db]

ONSET = "2026-01-05T10:00:00.250000+00:00"
DEMOGRAPHICS = ["age", "sex", "education_years"]
PHQ9 = [f"phq9_{i}" for i in range(1, 10)]


def questionnaire_study(**fields: Any) -> Study:
    """Two visits; demographics before the task and PHQ-9 after it at baseline, PHQ-9 after
    it at T1, MADRS (clinician-rated) at both: the demo study's layout on a small study."""
    study = make_study(n_events=2, n_practice=1, arms=("patients",), **fields)
    shipped = {i.code: i for i in instruments_load_shipped()}
    baseline, later = list(study.timepoints.order_by("order"))
    instrument_attach(
        study=study, timepoint=baseline, instrument=shipped["demographics"], position="before"
    )
    for timepoint in (baseline, later):
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["phq9"])
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["madrs"])
    return study


@pytest.fixture
def api(client: Client) -> ParticipantApi:
    return ParticipantApi(client)


@pytest.fixture
def study() -> Study:
    return questionnaire_study()


@pytest.fixture
def session(study: Study) -> Session:
    return study_enrol(study=study).session


def item(
    api: ParticipantApi,
    token: str,
    instrument: str,
    code: str,
    value: Any,
    *,
    client_id: str | None = None,
    rt_ms: int = 1800,
    **extra: Any,
) -> Any:
    body = {
        "client_id": client_id or str(uuid.uuid4()),
        "phase": "item",
        "instrument": instrument,
        "item": code,
        "value": value,
        "rt_ms": rt_ms,
        "onset_at": ONSET,
        **extra,
    }
    return api.post_raw(token, json.dumps(body))


def written(session: Session) -> tuple[Any, ...]:
    """Everything an answer may write."""
    return (
        list(ItemAnswer.objects.order_by("pk").values_list("pk", "item", "value", "client_id")),
        list(Response.objects.order_by("pk").values_list("pk", "phase", "value")),
        Session.objects.values_list("step_index", "status", "started_at", "last_activity_at").get(
            pk=session.pk
        ),
    )


def answer_demographics(api: ParticipantApi, token: str) -> None:
    for code, value in (("age", 34), ("sex", 1), ("education_years", 16)):
        assert item(api, token, "demographics", code, value).status_code == 201


def answer_task(api: ParticipantApi, token: str) -> None:
    """Every task step still to do (the state's steps up to the first item after the task)."""
    steps = api.state(token).json()["steps"]
    task = [s for s in steps if s["phase"] != "item"]
    assert steps[: len(task)] == task, "the task's steps come before the items after it"
    api.answer(token, len(task))


# --- the plan and the session state ---------------------------------------------------------


def test_the_plan_asks_the_self_report_items_before_and_after_the_task(session: Session) -> None:
    ids = {i.code: i.pk for i in Instrument.objects.all()}
    assert session.plan["items_before"] == [
        [ids["demographics"], "demographics", c] for c in DEMOGRAPHICS
    ]
    assert session.plan["items_after"] == [[ids["phq9"], "phq9", c] for c in PHQ9]
    steps = steps_of(session)
    # 3 demographics, practice e1 + br, 2 x (e1, br), 2 x e2, 9 PHQ-9: MADRS is not asked.
    assert len(steps) == 3 + 2 + 4 + 2 + 9
    assert [(s.instrument, s.item) for s in steps[:3]] == [
        ("demographics", c) for c in DEMOGRAPHICS
    ]
    assert [s.phase for s in steps[3:11]] == ["e1", "br", "e1", "br", "e1", "br", "e2", "e2"]
    assert [(s.instrument, s.item, s.block) for s in steps[11:]] == [
        ("phq9", c, "questionnaire") for c in PHQ9
    ]


def test_a_later_visit_asks_only_its_own_instruments(study: Study) -> None:
    participant = study_enrol(study=study).participant
    from trials.services.enrolment import session_create

    later = session_create(participant=participant, timepoint=study.timepoints.get(order=1))
    assert "items_before" not in later.plan
    assert [entry[2] for entry in later.plan["items_after"]] == PHQ9


def test_a_study_without_instruments_keeps_its_plan_and_steps() -> None:
    session = study_enrol(study=make_study(n_events=2, n_practice=1)).session
    assert set(session.plan) == {"practice", "order1", "order2"}
    assert all(not s.is_item for s in steps_of(session))


def test_the_state_lists_the_items_with_their_texts_in_english(
    api: ParticipantApi, session: Session
) -> None:
    state = api.state(session.token).json()
    assert state["progress"] == {"done": 0, "total": 20}
    assert state["task_started"] is False
    age, sex = state["steps"][:2]
    assert age == {
        "event": None,
        "phase": "item",
        "kind": "item",
        "block": "questionnaire",
        "practice": False,
        "instrument": "demographics",
        "item": "age",
        "number": 1,
        "count": 3,
        "text": "How old are you (years)?",
        "lang": "en",
        "instrument_name": "About you",
        "instructions": "A few questions about you.",
        "options": [],
        "min": 16,
        "max": 110,
        "unit": "years",
        "required": True,
    }
    assert sex["options"] == [
        {"value": 1, "label": "Female"},
        {"value": 2, "label": "Male"},
        {"value": 3, "label": "Other"},
        {"value": 9, "label": "I prefer not to say"},
    ]
    assert state["steps"][3]["event"] == "PR1" and state["steps"][3]["phase"] == "e1"
    phq = state["steps"][11]
    assert (phq["item"], phq["number"], phq["count"]) == ("phq9_1", 1, 9)
    assert phq["text"] == "Little interest or pleasure in doing things"
    assert [o["value"] for o in phq["options"]] == [0, 1, 2, 3]


def test_in_french_the_instrument_s_french_texts_else_english_marked_as_such(
    api: ParticipantApi, study: Study
) -> None:
    token = api.enrol(study.slug, language="fr").json()["session_token"]
    steps = api.state(token).json()["steps"]
    age, sex = steps[:2]
    assert (age["text"], age["lang"], age["unit"]) == (
        "Quel âge avez-vous (en années) ?",
        "fr",
        "ans",
    )
    assert age["instrument_name"] == "À propos de vous"
    assert sex["options"][3] == {"value": 9, "label": "Je préfère ne pas répondre"}
    # PHQ-9 ships in English only (no validated French wording is cited): English, said so.
    phq = steps[11]
    assert (phq["text"], phq["lang"]) == ("Little interest or pleasure in doing things", "en")
    assert phq["instrument_name"] == "Patient Health Questionnaire (PHQ-9)"


# --- stored, replayed ------------------------------------------------------------------------


def test_an_item_answer_is_stored_with_its_place_and_times(
    api: ParticipantApi, session: Session
) -> None:
    cid = str(uuid.uuid4())
    res = item(api, session.token, "demographics", "age", 34, client_id=cid)
    assert res.status_code == 201, res.json()
    body = res.json()
    row = ItemAnswer.objects.get()
    assert body == {
        "id": row.pk,
        "client_id": cid,
        "event": None,
        "phase": "item",
        "instrument": "demographics",
        "item": "age",
        "value": 34,
        "rt_ms": 1800,
        "onset_at": ONSET,
        "received_at": row.answered_at.isoformat(),
        "progress": {"done": 1, "total": 20},
    }
    assert (row.session_id, row.participant_id, row.instrument.code, row.item) == (
        session.pk,
        session.participant_id,
        "demographics",
        "age",
    )
    assert (row.value, row.source, row.rt_ms, str(row.client_id)) == (34, "participant", 1800, cid)
    assert row.onset_at is not None and row.onset_at.isoformat() == ONSET
    session.refresh_from_db()
    assert (session.step_index, session.status) == (1, "in_progress")
    assert session.started_at is not None


def test_the_same_client_id_again_returns_the_same_row_and_writes_nothing(
    api: ParticipantApi, session: Session
) -> None:
    cid = str(uuid.uuid4())
    first = item(api, session.token, "demographics", "age", 34, client_id=cid)
    assert item(api, session.token, "demographics", "sex", 2).status_code == 201
    before = written(session)
    again = item(api, session.token, "demographics", "age", 34, client_id=cid)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert written(session) == before
    # The same client_id with another value is a client bug: refused, nothing written.
    assert_error(
        item(api, session.token, "demographics", "age", 35, client_id=cid), 409, "client_id_reused"
    )
    assert written(session) == before


def test_a_task_answer_s_client_id_is_not_taken_by_an_item(api: ParticipantApi) -> None:
    study = make_study(n_events=2, n_practice=1, n_timepoints=1, slug="after-only")
    phq9 = {i.code: i for i in instruments_load_shipped()}["phq9"]
    instrument_attach(study=study, timepoint=study.timepoints.get(), instrument=phq9)
    session = study_enrol(study=study).session
    cid = str(uuid.uuid4())
    steps = api.state(session.token).json()["steps"]
    task = [s for s in steps if s["phase"] != "item"]
    api.answer(session.token, len(task) - 1)
    last = task[-1]
    assert (
        api.respond(
            session.token, event=last["event"], phase=last["phase"], value=40, client_id=cid
        ).status_code
        == 201
    )
    before = written(session)
    assert_error(
        item(api, session.token, "phq9", "phq9_1", 1, client_id=cid), 409, "client_id_reused"
    )
    assert written(session) == before


# --- refused: order ---------------------------------------------------------------------------


def test_an_item_out_of_order_is_refused_naming_the_next_step(
    api: ParticipantApi, session: Session
) -> None:
    before = written(session)
    error = assert_error(item(api, session.token, "demographics", "sex", 1), 409, "out_of_order")
    assert error["next"] == {
        "event": None,
        "phase": "item",
        "instrument": "demographics",
        "item": "age",
    }
    # The task cannot start before the questionnaire asked first.
    error = assert_error(
        api.respond(session.token, event="PR1", phase="e1", value=40), 409, "out_of_order"
    )
    assert error["next"] == {
        "event": None,
        "phase": "item",
        "instrument": "demographics",
        "item": "age",
    }
    # Nor can the questionnaire after the task be answered before the task.
    assert_error(item(api, session.token, "phq9", "phq9_1", 1), 409, "out_of_order")
    assert written(session) == before


def test_an_item_answered_already_and_the_task_s_turn(
    api: ParticipantApi, session: Session
) -> None:
    answer_demographics(api, session.token)
    before = written(session)
    assert_error(item(api, session.token, "demographics", "age", 40), 409, "already_answered")
    error = assert_error(item(api, session.token, "phq9", "phq9_1", 1), 409, "out_of_order")
    assert error["next"] == {"event": "PR1", "phase": "e1"}
    assert written(session) == before


def test_unknown_instruments_and_items_are_refused(api: ParticipantApi, session: Session) -> None:
    before = written(session)
    error = assert_error(
        item(api, session.token, "lotr", "lotr_1", 1), 400, "invalid", {"instrument"}
    )
    assert error["message"] == "No instrument 'lotr' in this session."
    # MADRS is attached but clinician-rated: it is not a step of the session.
    assert_error(item(api, session.token, "madrs", "madrs_1", 1), 400, "invalid", {"instrument"})
    error = assert_error(
        item(api, session.token, "demographics", "height", 170), 400, "invalid", {"item"}
    )
    assert error["message"] == "'demographics' has no item 'height' in this session."
    assert written(session) == before


def test_a_closed_session_takes_no_item(api: ParticipantApi, session: Session) -> None:
    Session.objects.filter(pk=session.pk).update(status="abandoned")
    before = written(session)
    assert_error(item(api, session.token, "demographics", "age", 34), 409, "session_closed")
    assert written(session) == before


# --- refused: values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value", "message"),
    [
        ("age", 15, "The answer must be between 16 and 110."),
        ("age", 111, "The answer must be between 16 and 110."),
        ("age", -3, "The answer must be between 16 and 110."),
    ],
)
def test_a_number_out_of_range_is_refused_with_the_range(
    api: ParticipantApi, session: Session, code: str, value: int, message: str
) -> None:
    before = written(session)
    error = assert_error(
        item(api, session.token, "demographics", code, value), 400, "invalid", {"value"}
    )
    assert error["fields"] == {"value": [message]}
    assert error["message"] == f"demographics {code}: {message} Nothing was stored."
    assert written(session) == before


def test_an_unknown_option_is_refused_with_the_options(
    api: ParticipantApi, session: Session
) -> None:
    assert item(api, session.token, "demographics", "age", 34).status_code == 201
    before = written(session)
    error = assert_error(
        item(api, session.token, "demographics", "sex", 5), 400, "invalid", {"value"}
    )
    assert error["fields"] == {"value": ["5 is not one of this item's options (1, 2, 3, 9)."]}
    assert written(session) == before


# (A numeric string such as "34" is read as 34, as for the task's answers: DRF's rule.)
@pytest.mark.parametrize("value", [34.5, "34 years", True, [34], {"v": 34}])
def test_a_value_that_is_not_a_whole_number_is_refused(
    api: ParticipantApi, session: Session, value: Any
) -> None:
    before = written(session)
    assert_error(item(api, session.token, "demographics", "age", value), 400, "invalid", {"value"})
    assert written(session) == before


def test_an_item_answer_needs_its_instrument_and_item(
    api: ParticipantApi, session: Session
) -> None:
    before = written(session)
    body = {"client_id": str(uuid.uuid4()), "phase": "item", "value": 34, "rt_ms": 10}
    assert_error(
        api.post_raw(session.token, json.dumps(body)), 400, "invalid", {"instrument", "item"}
    )
    # A task answer still needs its event and value.
    body = {"client_id": str(uuid.uuid4()), "phase": "e1", "value": None, "rt_ms": 10}
    assert_error(api.post_raw(session.token, json.dumps(body)), 400, "invalid", {"event", "value"})
    assert written(session) == before


def test_a_required_item_cannot_be_skipped(api: ParticipantApi, session: Session) -> None:
    before = written(session)
    error = assert_error(
        item(api, session.token, "demographics", "age", None), 400, "required", {"value"}
    )
    assert error["fields"] == {"value": ["This item is required: it cannot be skipped."]}
    assert written(session) == before


OPTIONAL = {
    "format": 1,
    "code": "mood",
    "version": "1",
    "kind": "self_report",
    "languages": ["en"],
    "name": {"en": "Mood"},
    "source": "test",
    "licence": "test",
    "options": [{"value": 0, "label": {"en": "No"}}, {"value": 1, "label": {"en": "Yes"}}],
    "items": [
        {"code": "mood_1", "text": {"en": "Sad?"}},
        {"code": "mood_2", "text": {"en": "Tired?"}, "required": False},
    ],
}


def test_an_optional_item_is_skipped_with_null_and_stored_as_skipped(api: ParticipantApi) -> None:
    study = make_study(n_events=2, n_practice=1, n_timepoints=1, slug="optional")
    mood, _ = instrument_import(data=json.dumps(OPTIONAL))
    instrument_attach(
        study=study, timepoint=study.timepoints.get(), instrument=mood, position="before"
    )
    session = study_enrol(study=study).session
    steps = api.state(session.token).json()["steps"]
    assert [(s["item"], s["required"]) for s in steps[:2]] == [("mood_1", True), ("mood_2", False)]
    assert item(api, session.token, "mood", "mood_1", 1).status_code == 201
    res = item(api, session.token, "mood", "mood_2", None)
    assert res.status_code == 201 and res.json()["value"] is None
    assert list(ItemAnswer.objects.values_list("item", "value")) == [
        ("mood_1", 1),
        ("mood_2", None),
    ]


# --- resume, complete, score, export, withdraw ------------------------------------------------


def test_resume_on_another_device_starts_at_the_exact_item(
    api: ParticipantApi, session: Session
) -> None:
    answer_demographics(api, session.token)
    answer_task(api, session.token)
    for code, value in zip(PHQ9[:4], (0, 1, 2, 3), strict=True):
        assert item(api, session.token, "phq9", code, value).status_code == 201
    elsewhere = ParticipantApi(Client()).state(session.token).json()
    assert elsewhere["progress"] == {"done": 15, "total": 20}
    assert elsewhere["task_started"] is True
    assert [(s["instrument"], s["item"], s["number"]) for s in elsewhere["steps"]] == [
        ("phq9", f"phq9_{i}", i) for i in range(5, 10)
    ]


def test_the_task_is_not_started_while_only_items_are_answered(
    api: ParticipantApi, session: Session
) -> None:
    assert item(api, session.token, "demographics", "age", 34).status_code == 201
    state = api.state(session.token).json()
    assert (state["progress"]["done"], state["task_started"]) == (1, False)
    assert [s["item"] for s in state["steps"][:2]] == ["sex", "education_years"]


def test_completion_waits_for_the_items_then_scores_and_exports_them(
    api: ParticipantApi, session: Session, study: Study, django_capture_on_commit_callbacks: Any
) -> None:
    answer_demographics(api, session.token)
    answer_task(api, session.token)
    res = api.complete(session.token)
    error = assert_error(res, 409, "incomplete")
    assert error["missing"] == [
        {"event": None, "phase": "item", "instrument": "phq9", "item": code} for code in PHQ9
    ]
    values = [0, 1, 2, 3, 3, 2, 1, 0, 1]
    for code, value in zip(PHQ9, values, strict=True):
        assert item(api, session.token, "phq9", code, value).status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        assert api.complete(session.token).status_code == 200
    # Scored with the session (eager Celery here; tests/instruments/test_session_worker.py
    # runs the real worker): PHQ-9's total, demographics not scored.
    scores = list(
        InstrumentScore.objects.values_list(
            "instrument__code", "total", "n_answered", "n_missing", "status"
        )
    )
    assert scores == [("phq9", 13.0, 9, 0, "complete")]
    from tests.api.conftest import make_researchers

    owner = make_researchers(study, make_study(slug="other-study", n_events=2)).client("owner")
    rows = owner.get(f"/api/v1/studies/{study.slug}/questionnaires/?page_size=100").json()[
        "results"
    ]
    assert [(r["instrument"], r["item"], r["value"], r["source"], r["rt_ms"]) for r in rows] == [
        ("demographics", "age", 34, "participant", 1800),
        ("demographics", "sex", 1, "participant", 1800),
        ("demographics", "education_years", 16, "participant", 1800),
    ] + [
        ("phq9", code, value, "participant", 1800) for code, value in zip(PHQ9, values, strict=True)
    ]
    assert {(r["session"], r["timepoint"]) for r in rows} == {(session.pk, "baseline")}
    scored = owner.get(f"/api/v1/studies/{study.slug}/instrument-scores/").json()["results"]
    assert [(r["instrument"], r["total"], r["status"]) for r in scored] == [
        ("phq9", 13.0, "complete")
    ]


def test_withdrawal_deletes_the_participant_s_item_answers_and_scores(
    api: ParticipantApi, session: Session, study: Study
) -> None:
    answer_demographics(api, session.token)
    other = study_enrol(study=study).session
    assert item(api, other.token, "demographics", "age", 50).status_code == 201
    InstrumentScore.objects.create(
        session=session,
        instrument=Instrument.objects.get(code="phq9"),
        score_version=1,
        total=3,
        n_answered=9,
        n_missing=0,
        status="complete",
        scored_at=session.created_at,
    )
    participant_withdraw(study=study, participant_id=session.participant_id, actor="test")
    assert list(ItemAnswer.objects.values_list("session_id", "item")) == [(other.pk, "age")]
    assert not InstrumentScore.objects.exists()


def test_the_demo_study_asks_demographics_before_the_task_at_baseline_and_phq9_after_it(
    api: ParticipantApi,
) -> None:
    from trials.services.demo import demo_study_load
    from trials.services.enrolment import session_create

    study, _owner, _password = demo_study_load(password="demo-pass-123")
    enrolment = study_enrol(study=study)
    baseline = enrolment.session
    assert [entry[1:] for entry in baseline.plan["items_before"]] == [
        ["demographics", c] for c in DEMOGRAPHICS
    ]
    assert [entry[1:] for entry in baseline.plan["items_after"]] == [["phq9", c] for c in PHQ9]
    for timepoint in study.timepoints.filter(order__gt=0):
        later = session_create(participant=enrolment.participant, timepoint=timepoint)
        assert "items_before" not in later.plan
        assert [entry[2] for entry in later.plan["items_after"]] == PHQ9
    # MADRS is attached at every visit, rated by staff: never a step of the session.
    links = study.instruments.filter(instrument__code="madrs")
    assert links.count() == study.timepoints.count()
    assert all(s.instrument != "madrs" for s in steps_of(baseline))
    first = api.state(baseline.token).json()["steps"][0]
    assert (first["instrument"], first["item"]) == ("demographics", "age")


def test_the_preview_asks_the_timepoint_s_questionnaires_as_a_session_there(
    study: Study, client: Client
) -> None:
    from tests.dashboard.builders import member
    from trials.models import StudyEventList
    from trials.selectors import session_state

    enrolled = study_enrol(study=study, language="fr").session
    real = session_state(session=enrolled)
    user = member(study, "viewer")
    client.force_login(user)
    position = StudyEventList.objects.get(study=study, event_list=enrolled.event_list).position
    page = client.get(f"/dashboard/s/{study.slug}/preview/?lang=fr&list={position}&timepoint=0")
    preview = page.context["preview"]["state"]
    assert preview["progress"] == real["progress"] == {"done": 0, "total": 20}
    items = [s for s in preview["steps"] if s["kind"] == "item"]
    assert items == [s for s in real["steps"] if s["kind"] == "item"]
    assert [s["item"] for s in preview["steps"][:3]] == DEMOGRAPHICS
    assert [s["item"] for s in preview["steps"][-9:]] == PHQ9
    # At the later visit: PHQ-9 after the task, nothing before it.
    later = client.get(f"/dashboard/s/{study.slug}/preview/?lang=fr&list={position}&timepoint=1")
    steps = later.context["preview"]["state"]["steps"]
    assert steps[0]["kind"] != "item"
    assert [s["item"] for s in steps if s["kind"] == "item"] == PHQ9
    assert 'id="preview-timepoint"' in later.content.decode()
