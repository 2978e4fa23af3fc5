"""trials.steps: the order of a session's steps, and reading one step without building all."""

from hypothesis import given, settings, strategies as st

from trials.steps import Step, session_steps, step_at, steps_total

PLAN = {
    "practice": [[1, "PR01"]],
    "order1": [[10, "E01"], [11, "E02"]],
    "order2": [[11, "E02"], [10, "E01"]],
}


def test_default_options_give_e1_br_then_e2() -> None:
    assert session_steps(PLAN, {}) == [
        Step(1, "PR01", "practice", "e1", True),
        Step(1, "PR01", "practice", "br", True),
        Step(10, "E01", "block1", "e1", False),
        Step(10, "E01", "block1", "br", False),
        Step(11, "E02", "block1", "e1", False),
        Step(11, "E02", "block1", "br", False),
        Step(11, "E02", "block2", "e2", False),
        Step(10, "E01", "block2", "e2", False),
    ]


def test_every_option_adds_its_steps_in_place() -> None:
    config = {"collect_ebr": True, "collect_confidence": True, "memory_test": True, "ratings": True}
    steps = session_steps(PLAN, config)
    assert [s.phase for s in steps[:4]] == ["e1", "ebr1", "br", "confidence"]
    assert [(s.code, s.phase) for s in steps[12:16]] == [
        ("E02", "e2"),
        ("E02", "ebr2"),
        ("E01", "e2"),
        ("E01", "ebr2"),
    ]
    assert [(s.code, s.block) for s in steps[16:18]] == [("E01", "memory"), ("E02", "memory")]
    assert [s.phase for s in steps[18:23]] == [
        "vividness",
        "familiarity",
        "experience",
        "arousal",
        "negativity",
    ]
    assert len(steps) == 4 + 8 + 4 + 2 + 10 == steps_total(PLAN, config)


def test_step_at_is_none_outside_the_session() -> None:
    assert step_at(PLAN, {}, 8) is None
    assert step_at(PLAN, {}, -1) is None
    assert step_at(PLAN, {}, 7) == Step(10, "E01", "block2", "e2", False)


@settings(max_examples=200, deadline=None)
@given(
    practice=st.integers(0, 3),
    events=st.integers(1, 12),
    flags=st.fixed_dictionaries(
        {k: st.booleans() for k in ("collect_ebr", "collect_confidence", "memory_test", "ratings")}
    ),
    before=st.integers(0, 4),
    after=st.integers(0, 4),
    data=st.data(),
)
def test_step_at_and_total_agree_with_the_whole_list(
    practice: int,
    events: int,
    flags: dict[str, bool],
    before: int,
    after: int,
    data: st.DataObject,
) -> None:
    order1 = [[100 + i, f"E{i:02d}"] for i in range(events)]
    order2 = data.draw(st.permutations(order1))
    plan = {
        "practice": [[i, f"PR{i:02d}"] for i in range(practice)],
        "order1": order1,
        "order2": order2,
    }
    if before:
        plan["items_before"] = [[7, "demographics", f"q{i}"] for i in range(before)]
    if after:
        plan["items_after"] = [[8, "phq9", f"phq9_{i}"] for i in range(after)]
    steps = session_steps(plan, flags)
    assert steps_total(plan, flags) == len(steps)
    assert [step_at(plan, flags, i) for i in range(len(steps) + 2)] == [*steps, None, None]


def test_questionnaire_items_come_before_and_after_the_task() -> None:
    plan = {
        **PLAN,
        "items_before": [[7, "demographics", "age"], [7, "demographics", "sex"]],
        "items_after": [[8, "phq9", "phq9_1"]],
    }
    config = {"memory_test": True, "ratings": True}
    steps = session_steps(plan, config)
    assert steps[:2] == [
        Step(0, "", "questionnaire", "item", False, "demographics", "age", 7),
        Step(0, "", "questionnaire", "item", False, "demographics", "sex", 7),
    ]
    assert steps[2] == Step(1, "PR01", "practice", "e1", True)
    assert steps[-2].block == "ratings"
    assert steps[-1] == Step(0, "", "questionnaire", "item", False, "phq9", "phq9_1", 8)
    assert [s.is_item for s in steps].count(True) == 3
    # Without them the task's steps are exactly as before.
    assert [s for s in steps if not s.is_item] == session_steps(PLAN, config)
