"""A session with questionnaires answered over real HTTP (the web server), completed, and
scored by a real Celery worker process: the task's score and the instrument's score come
together, and the exports hold the answers given in the session."""

# ruff: noqa: F811 - the fixtures are imported from pipeline_fixtures and used as arguments

import uuid

import pytest

from instruments.models import InstrumentScore, ItemAnswer
from instruments.services import instrument_attach, instruments_load_shipped
from scoring.models import Score
from tests.api.conftest import make_researchers
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (  # noqa: F401 - fixtures
    Stack,
    expected_score,
    hand_answer,
    hand_rt,
    http_call,
    module_stack,
    own_stack,
    pipeline_redis,
    session_complete_http,
    session_id_of,
    web_url,
)
from trials.models import Study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PHQ9 = {f"phq9_{i}": v for i, v in zip(range(1, 10), (3, 2, 2, 1, 0, 1, 2, 3, 0), strict=True)}
DEMOGRAPHICS = {"age": 41, "sex": 9, "education_years": 12}


def questionnaire_study() -> Study:
    study = make_study(n_events=8, n_timepoints=1, arms=("patients",), slug="worker-items")
    shipped = {i.code: i for i in instruments_load_shipped()}
    timepoint = study.timepoints.get()
    instrument_attach(
        study=study, timepoint=timepoint, instrument=shipped["demographics"], position="before"
    )
    instrument_attach(study=study, timepoint=timepoint, instrument=shipped["phq9"])
    return study


def test_the_worker_scores_the_session_s_questionnaires_with_its_task(
    postgres: None, redis_url: str, own_stack: Stack, web_url: str
) -> None:
    worker = own_stack.worker()
    study = questionnaire_study()
    call = http_call(web_url)
    status, body = call("POST", f"/api/v1/studies/{study.slug}/enrol", {"consent": True})
    assert status == 201, body
    token = body["session_token"]
    status, state = call("GET", f"/api/v1/sessions/{token}", None)
    assert status == 200
    shown: dict[str, int] = {}
    for step in state["steps"]:
        body = {"client_id": str(uuid.uuid4()), "phase": step["phase"], "onset_at": None}
        if step["phase"] == "item":
            answers = DEMOGRAPHICS if step["instrument"] == "demographics" else PHQ9
            body.update(
                instrument=step["instrument"],
                item=step["item"],
                value=answers[step["item"]],
                rt_ms=900,
            )
        else:
            event, phase = step["event"], step["phase"]
            body.update(
                event=event,
                value=hand_answer(event, phase, shown.get(event)),
                rt_ms=hand_rt(event, phase),
            )
        status, row = call("POST", f"/api/v1/sessions/{token}/responses", body)
        assert status == 201, (step, row)
        if step["phase"] == "e1":
            shown[step["event"]] = int(row["br"])
    session_id = session_id_of(token)
    own_stack.ready(worker)

    status, body = session_complete_http(call, token)
    assert status == 200, body
    own_stack.wait(
        "the instrument score",
        lambda: InstrumentScore.objects.filter(session_id=session_id).first(),
        timeout=10,
    )
    score = Score.objects.get(session_id=session_id)
    assert score.status == "done"
    assert (score.values, score.flags) == expected_score(session_id)
    phq = InstrumentScore.objects.get(session_id=session_id)
    assert (phq.instrument.code, phq.total, phq.n_answered, phq.n_missing, phq.status) == (
        "phq9",
        14.0,
        9,
        0,
        "complete",
    )
    assert InstrumentScore.objects.count() == 1  # demographics has no score
    stored = dict(ItemAnswer.objects.filter(session_id=session_id).values_list("item", "value"))
    assert stored == {**DEMOGRAPHICS, **PHQ9}

    owner = make_researchers(study, make_study(slug="other-study", n_events=2)).client("owner")
    rows = owner.get(f"/api/v1/studies/{study.slug}/questionnaires/?format=csv")
    lines = b"".join(rows.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 + 12
    assert lines[1].split(",")[5:10] == ["demographics", "age", "41", "participant", "900"]
    scores = owner.get(f"/api/v1/studies/{study.slug}/instrument-scores/").json()["results"]
    assert [(r["instrument"], r["total"], r["status"]) for r in scores] == [
        ("phq9", 14.0, "complete")
    ]
