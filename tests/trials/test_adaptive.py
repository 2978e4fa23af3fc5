"""Adaptive base rates: BR = E1 -/+ d, d in 6..15, inside the scale, half good and half bad."""

from collections import Counter

import pytest

from tests.factories import make_study
from tests.trials.conftest import ParticipantApi
from trials.models import Trial
from trials.services.enrolment import study_enrol
from trials.services.errors import InvalidInput
from trials.services.responses import adaptive_base_rate

pytestmark = pytest.mark.usefixtures("postgres")

DRAWS = 400  # each of 10 values is missed with probability 0.9**400 < 1e-18


def draws(e1: int, wanted: str, low: int = 3, high: int = 77, d_min: int = 6, d_max: int = 15):  # type: ignore[no-untyped-def]
    results = {
        adaptive_base_rate(e1=e1, wanted=wanted, low=low, high=high, d_min=d_min, d_max=d_max)
        for _ in range(DRAWS)
    }
    return {br for br, _v in results}, {v for _br, v in results}


# --- adaptive_base_rate, pure ------------------------------------------------------------


@pytest.mark.parametrize(
    ("e1", "wanted", "brs", "valence"),
    [
        (40, "good", set(range(25, 35)), "good"),  # 40 - 15 .. 40 - 6
        (40, "bad", set(range(46, 56)), "bad"),  # 40 + 6 .. 40 + 15
        (10, "good", {3, 4}, "good"),  # only d = 6, 7 keep BR >= 3
        (70, "bad", {76, 77}, "bad"),  # only d = 6, 7 keep BR <= 77
        (3, "good", set(range(9, 19)), "bad"),  # no room below: bad news instead
        (8, "good", set(range(14, 24)), "bad"),  # 8 - 6 = 2 < 3
        (77, "bad", set(range(62, 72)), "good"),  # no room above: good news instead
        (72, "bad", set(range(57, 67)), "good"),  # 72 + 6 = 78 > 77
    ],
)
def test_adaptive_base_rate_range(e1: int, wanted: str, brs: set[int], valence: str) -> None:
    assert draws(e1, wanted) == (brs, {valence})


def test_adaptive_base_rate_fixed_distance() -> None:
    assert draws(50, "good", d_min=10, d_max=10) == ({40}, {"good"})
    assert draws(50, "bad", d_min=10, d_max=10) == ({60}, {"bad"})


def test_adaptive_base_rate_other_scale() -> None:
    assert draws(6, "good", low=0, high=100) == ({0}, {"good"})
    assert draws(5, "good", low=0, high=100) == (set(range(11, 21)), {"bad"})
    assert draws(97, "bad", low=0, high=100) == (set(range(82, 92)), {"good"})


def test_adaptive_base_rate_without_room_is_refused() -> None:
    with pytest.raises(InvalidInput):
        adaptive_base_rate(e1=5, wanted="good", low=3, high=10, d_min=6, d_max=15)


# --- through the API -----------------------------------------------------------------------


def adaptive_session(n_events: int = 8):  # type: ignore[no-untyped-def]
    study = make_study(n_events=n_events, n_practice=1, br_mode="adaptive")
    return study_enrol(study=study).session


def trial_by_code(session) -> dict[str, Trial]:  # type: ignore[no-untyped-def]
    return {t.event.code: t for t in Trial.objects.filter(session=session).select_related("event")}


@pytest.mark.django_db
def test_trials_start_without_base_rate_and_half_planned_good() -> None:
    session = adaptive_session()

    trials = trial_by_code(session)

    assert (trials["PR1"].br, trials["PR1"].br_mode, trials["PR1"].planned_valence) == (
        50,
        "fixed",
        "",
    )
    main = [t for code, t in trials.items() if code != "PR1"]
    assert [t.br for t in main] == [None] * 8
    assert {t.br_mode for t in main} == {"adaptive"}
    assert Counter(t.planned_valence for t in main) == {"good": 4, "bad": 4}


@pytest.mark.django_db
def test_drawn_base_rate_is_stored_returned_and_shown(api: ParticipantApi) -> None:
    session = adaptive_session()
    api.answer(session.token, 2)  # the practice event (fixed base rate)
    event = session.plan["order1"][0][1]

    body = api.respond(session.token, event=event, phase="e1", value=40).json()

    trial = trial_by_code(session)[event]
    assert body["br"] == trial.br
    assert trial.br in set(range(25, 35)) | set(range(46, 56))
    assert trial.planned_valence == ("good" if trial.br < 40 else "bad")
    step = api.state(session.token).json()["steps"][0]
    assert (step["event"], step["phase"], step["br"]) == (event, "br", trial.br)
    # The br screen must echo the drawn value.
    wrong = api.respond(session.token, event=event, phase="br", value=trial.br + 1)
    assert wrong.status_code == 400
    ok = api.respond(session.token, event=event, phase="br", value=trial.br)
    assert ok.status_code == 201


@pytest.mark.django_db
def test_replayed_e1_returns_the_same_draw(api: ParticipantApi) -> None:
    session = adaptive_session()
    api.answer(session.token, 2)
    event = session.plan["order1"][0][1]
    first = api.respond(session.token, event=event, phase="e1", value=40, client_id=None)
    cid = first.json()["client_id"]

    replays = [
        api.respond(session.token, event=event, phase="e1", value=40, client_id=cid)
        for _ in range(5)
    ]

    assert {r.status_code for r in replays} == {200}
    assert {r.json()["br"] for r in replays} == {first.json()["br"]}
    assert trial_by_code(session)[event].br == first.json()["br"]


def walk(api: ParticipantApi, session, e1_of) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """Answer the whole session; e1_of(position in block 1) gives each E1. Returns (E1, BR)."""
    order = [code for _pk, code in session.plan["order1"]]
    pairs: dict[str, tuple[int, int]] = {}

    def estimate(step: dict) -> int:
        if step["practice"]:
            return 40
        return e1_of(order.index(step["event"]))

    for body in api.answer(session.token, estimate=estimate):
        if body["phase"] == "e1" and body["event"] != "PR1":
            pairs[body["event"]] = (body["value"], body["br"])
    return pairs


def valences(pairs: dict[str, tuple[int, int]]) -> Counter[str]:
    return Counter("good" if br < e1 else "bad" for e1, br in pairs.values())


def assert_consistent(session, pairs: dict[str, tuple[int, int]]) -> None:  # type: ignore[no-untyped-def]
    """Every BR is E1 -/+ d with d in 6..15, inside 3..77, stored with its valence."""
    trials = trial_by_code(session)
    for code, (e1, br) in pairs.items():
        assert 6 <= abs(br - e1) <= 15, (code, e1, br)
        assert 3 <= br <= 77
        assert trials[code].br == br
        assert trials[code].planned_valence == ("good" if br < e1 else "bad")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("label", "e1_of"),
    [
        ("middle", lambda i: 40),
        ("spread", lambda i: 10 + 6 * i),
        ("ends alternate", lambda i: 3 if i % 2 else 77),
        ("bottom first", lambda i: 3 if i < 4 else 50),
        ("top first", lambda i: 77 if i < 4 else 30),
    ],
)
def test_session_gets_half_good_half_bad_news(api: ParticipantApi, label: str, e1_of) -> None:  # type: ignore[no-untyped-def]
    session = adaptive_session()

    pairs = walk(api, session, e1_of)

    assert len(pairs) == 8
    assert_consistent(session, pairs)
    assert valences(pairs) == {"good": 4, "bad": 4}, label
    assert api.complete(session.token).status_code == 200


@pytest.mark.django_db
def test_near_the_ends_the_direction_with_room_is_used(api: ParticipantApi) -> None:
    """E1 <= 8 leaves no room below (bad news), E1 >= 72 none above (good news).

    The balance is kept by handing the displaced valence to a trial not drawn yet; it is
    exact only when enough trials with room in both directions come after the forced ones
    (the server cannot know later E1 values), so only the forced valences are asserted.
    """
    session = adaptive_session()
    e1s = [4, 9, 71, 76, 8, 72, 5, 75]

    pairs = walk(api, session, lambda i: e1s[i])

    assert_consistent(session, pairs)
    for e1, br in pairs.values():
        if e1 <= 8:
            assert br > e1
        if e1 >= 72:
            assert br < e1


@pytest.mark.django_db
def test_all_e1_at_the_bottom_can_only_give_bad_news(api: ParticipantApi) -> None:
    """With every E1 = 3 there is no base rate 6..15 points below inside 3..77.

    PROTOCOL.md's half/half balance cannot hold then: each trial gives bad news (BR 9..18),
    never an out-of-range base rate and never an error.
    """
    session = adaptive_session()

    pairs = walk(api, session, lambda i: 3)

    assert_consistent(session, pairs)
    assert valences(pairs) == {"bad": 8}
    assert {br for _e1, br in pairs.values()} <= set(range(9, 19))


@pytest.mark.django_db
def test_odd_number_of_events_differs_by_one(api: ParticipantApi) -> None:
    session = adaptive_session(n_events=7)

    pairs = walk(api, session, lambda i: 3 if i < 3 else 60)

    assert_consistent(session, pairs)
    counts = valences(pairs)
    assert sorted(counts.values()) == [3, 4]


@pytest.mark.django_db
def test_adaptive_study_requires_a_debrief(api: ParticipantApi) -> None:
    session = adaptive_session()

    config = api.state(session.token).json()["config"]

    assert (config["br_mode"], config["debrief"]) == ("adaptive", True)
