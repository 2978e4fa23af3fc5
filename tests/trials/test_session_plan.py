"""The plan of a session: Latin-square lists, event orders drawn once, the ordered steps."""

import pytest

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Event, EventList, Session, Trial
from trials.services.enrolment import (
    latin_square_list_position,
    session_create,
    study_enrol,
)

pytestmark = pytest.mark.usefixtures("postgres")


# --- Latin square ------------------------------------------------------------------------


def test_latin_square_rows_hold_every_list_once() -> None:
    square = [
        [
            latin_square_list_position(sequence=row, timepoint_index=col, n_lists=3)
            for col in range(3)
        ]
        for row in range(3)
    ]
    assert square == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]


@pytest.mark.django_db
def test_six_participants_of_one_arm_cycle_through_the_square() -> None:
    study = make_study(n_events=2, n_practice=0, n_timepoints=3, arms=("patients",))
    lists = [sel.event_list for sel in study.study_lists.order_by("position")]
    timepoints = list(study.timepoints.order_by("order"))

    participants = [study_enrol(study=study).participant for _ in range(6)]

    assert [p.sequence for p in participants] == [0, 1, 2, 0, 1, 2]
    for p in participants:
        seen = [session_create(participant=p, timepoint=tp).event_list for tp in timepoints]
        assert seen == [lists[(p.sequence + i) % 3] for i in range(3)]
        assert sorted(e.pk for e in seen) == sorted(e.pk for e in lists)
    # Each timepoint (a column of the square) shows every list to two participants.
    for tp in timepoints:
        per_list = sorted(
            Session.objects.filter(timepoint=tp)
            .values_list("event_list__name", flat=True)
            .order_by("event_list__name")
        )
        assert per_list == sorted([e.name for e in lists] * 2)


@pytest.mark.django_db
def test_latin_square_is_balanced_within_each_arm() -> None:
    study = make_study(n_events=2, n_practice=0, n_timepoints=3)

    enrolled = [study_enrol(study=study).participant for _ in range(8)]

    by_arm = {
        arm: [p.sequence for p in enrolled if p.arm.code == arm] for arm in ("patients", "controls")
    }
    assert by_arm == {"patients": [0, 1, 2, 0], "controls": [0, 1, 2, 0]}


@pytest.mark.django_db
def test_session_create_returns_the_existing_session() -> None:
    study = make_study(n_events=2)
    enrolment = study_enrol(study=study)

    again = session_create(participant=enrolment.participant, timepoint=enrolment.session.timepoint)

    assert again.pk == enrolment.session.pk
    assert again.plan == enrolment.session.plan
    assert Session.objects.count() == 1
    assert Trial.objects.count() == 3


# --- plan and trials ---------------------------------------------------------------------


@pytest.mark.django_db
def test_plan_puts_practice_first_and_permutes_the_events() -> None:
    study = make_study(n_events=12, n_practice=2)
    session = study_enrol(study=study).session
    events = list(Event.objects.filter(event_list=session.event_list).order_by("position"))
    practice = [[e.pk, e.code] for e in events if e.practice]
    main = sorted([e.pk, e.code] for e in events if not e.practice)

    assert session.plan["practice"] == practice == [[events[0].pk, "PR1"], [events[1].pk, "PR2"]]
    assert sorted(session.plan["order1"]) == main
    assert sorted(session.plan["order2"]) == main
    assert len(main) == 12


@pytest.mark.django_db
def test_orders_are_drawn_per_session() -> None:
    study = make_study(n_events=12, n_practice=0)

    plans = [study_enrol(study=study).session.plan for _ in range(4)]

    # 12! orders: four equal draws in a row would mean the orders are not random.
    assert len({str(p["order1"]) for p in plans}) > 1
    assert len({str(p["order2"]) for p in plans}) > 1


@pytest.mark.django_db
def test_trials_store_positions_and_fixed_base_rates() -> None:
    study = make_study(n_events=3, n_practice=1)
    session = study_enrol(study=study).session
    trials = {
        t.event.code: t for t in Trial.objects.filter(session=session).select_related("event")
    }

    assert set(trials) == {"PR1", "A01", "A02", "A03"}
    pr = trials["PR1"]
    assert (pr.practice, pr.block1_position, pr.block2_position, pr.br, pr.br_mode) == (
        True,
        1,
        None,
        50,
        "fixed",
    )
    for position, (_pk, code) in enumerate(session.plan["order1"], start=1):
        assert trials[code].block1_position == position
        assert trials[code].br == trials[code].event.base_rate
        assert (trials[code].practice, trials[code].br_mode, trials[code].planned_valence) == (
            False,
            "fixed",
            "",
        )
    for position, (_pk, code) in enumerate(session.plan["order2"], start=1):
        assert trials[code].block2_position == position
    assert {t.br for c, t in trials.items() if c != "PR1"} == {20, 30, 40}


@pytest.mark.django_db
def test_state_is_stable_across_reads(api: ParticipantApi) -> None:
    study = make_study(n_events=10, n_practice=2)
    session = study_enrol(study=study).session

    first, second = api.state(session.token), api.state(session.token)

    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    order = [s["event"] for s in first.json()["steps"] if s["phase"] == "e1"]
    assert order == ["PR1", "PR2"] + [code for _pk, code in session.plan["order1"]]
    assert Session.objects.get().plan == session.plan


def expected_steps(session: Session, *, full: bool) -> list[tuple[str, str, str, bool]]:
    """(event, block, phase, practice) in the order of trials/steps.py, written out by hand."""
    b1 = ["e1", "ebr1", "br", "confidence"] if full else ["e1", "br"]
    b2 = ["e2", "ebr2"] if full else ["e2"]
    plan = session.plan
    steps = [(c, "practice", p, True) for _pk, c in plan["practice"] for p in b1]
    steps += [(c, "block1", p, False) for _pk, c in plan["order1"] for p in b1]
    steps += [(c, "block2", p, False) for _pk, c in plan["order2"] for p in b2]
    if full:
        steps += [(c, "memory", "memory", False) for _pk, c in plan["order1"]]
        ratings = ["vividness", "familiarity", "experience", "arousal", "negativity"]
        steps += [(c, "ratings", p, False) for _pk, c in plan["order2"] for p in ratings]
    return steps


@pytest.mark.django_db
@pytest.mark.parametrize("full", [False, True])
def test_steps_follow_the_study_options(api: ParticipantApi, full: bool) -> None:
    study = make_study(
        n_events=3,
        n_practice=1,
        collect_ebr=full,
        collect_confidence=full,
        memory_test=full,
        ratings=full,
    )
    session = study_enrol(study=study).session

    body = api.state(session.token).json()

    got = [(s["event"], s["block"], s["phase"], s["practice"]) for s in body["steps"]]
    assert got == expected_steps(session, full=full)
    # The kind of each step, which is all the browser renders it by.
    kinds = {
        "e1": "estimate_self",
        "e2": "estimate_self",
        "ebr1": "estimate_other",
        "ebr2": "estimate_other",
        "br": "base_rate",
        "memory": "recall",
        "confidence": "rating",
        "vividness": "rating",
        "familiarity": "rating",
        "experience": "rating",
        "arousal": "rating",
        "negativity": "rating",
    }
    assert [s["kind"] for s in body["steps"]] == [kinds[s["phase"]] for s in body["steps"]]
    # practice 1 x 4 + block1 3 x 4 + block2 3 x 2 + memory 3 + ratings 3 x 5 = 40
    assert body["progress"] == {"done": 0, "total": 40 if full else 11}
    assert len(got) == (40 if full else 11)


@pytest.mark.django_db
def test_initial_state_in_full(api: ParticipantApi) -> None:
    study = make_study(
        n_events=1, n_practice=0, title="Risk study", debrief_text={"en": "D", "fr": "Débrief"}
    )
    session = study_enrol(study=study, language="fr").session

    body = api.state(session.token).json()

    assert body == {
        "status": "created",
        "language": "fr",
        "scale": {"min": 3, "max": 77},
        "progress": {"done": 0, "total": 3},
        "task_started": False,
        "config": {
            "title": "Risk study",
            "br_mode": "fixed",
            "min_br_view_ms": 100,
            "collect_ebr": False,
            "collect_confidence": False,
            "memory_test": False,
            "ratings": False,
            "debrief": False,
            "debrief_text": "Débrief",
        },
        "steps": [
            {
                "event": "A01",
                "text": "Événement A1",
                "block": "block1",
                "phase": "e1",
                "kind": "estimate_self",
                "practice": False,
                "br": None,
            },
            {
                "event": "A01",
                "text": "Événement A1",
                "block": "block1",
                "phase": "br",
                "kind": "base_rate",
                "practice": False,
                "br": None,
            },
            {
                "event": "A01",
                "text": "Événement A1",
                "block": "block2",
                "phase": "e2",
                "kind": "estimate_self",
                "practice": False,
                "br": None,
            },
        ],
        "completion": None,
    }


@pytest.mark.django_db
def test_base_rate_appears_only_after_its_e1(api: ParticipantApi) -> None:
    study = make_study(n_events=3, n_practice=1)
    session = study_enrol(study=study).session
    base_rates = dict(Event.objects.values_list("code", "base_rate"))

    def shown() -> dict[str, int | None]:
        return {
            s["event"]: s["br"]
            for s in api.state(session.token).json()["steps"]
            if s["phase"] == "br"
        }

    assert shown() == {"PR1": None, "A01": None, "A02": None, "A03": None}
    api.answer(session.token, 1)  # e1 of PR1
    assert shown() == {"PR1": 50, "A01": None, "A02": None, "A03": None}
    api.answer(session.token, 1)  # br of PR1: it leaves the list
    assert shown() == {"A01": None, "A02": None, "A03": None}
    first = session.plan["order1"][0][1]
    api.answer(session.token, 1)  # e1 of the first block-1 event
    expected = {code: None for _pk, code in session.plan["order1"]}
    expected[first] = base_rates[first]
    assert shown() == expected
    # No other field of any step carries a base rate before its e1.
    steps = api.state(session.token).json()["steps"]
    for step in steps:
        if step["event"] != first:
            assert step["br"] is None
        assert set(step) == {"event", "text", "block", "phase", "kind", "practice", "br"}


@pytest.mark.django_db
def test_state_of_an_unknown_or_malformed_token_is_404(api: ParticipantApi) -> None:
    for token in ["A" * 32, "x", "A" * 65, "%00", "ab%00cd", "..", "%E2%80%AE"]:
        res = api.state(token)
        assert res.status_code == 404, token
        assert res.json() == {
            "error": {"code": "not_found", "message": "Unknown session.", "fields": {}}
        }
    assert EventList.objects.count() == 0
