"""The declaration of the phases is consistent with itself and with the study model."""

import pytest

from protocol import phases
from protocol.phases import PHASES, Kind, RangeSource


def test_names_are_unique_and_listed_in_both_orders() -> None:
    assert len(set(phases.NAMES)) == len(PHASES) == 12
    assert sorted(p.name for p in phases.TRIAL_COLUMNS) == sorted(phases.NAMES)
    assert phases.BY_NAME["ebr2"] is phases.EBR2
    assert phases.phase_named("item") is None


def test_the_study_flags_in_declaration_order() -> None:
    assert phases.STEP_FLAGS == ("collect_ebr", "collect_confidence", "memory_test", "ratings")
    assert [p.name for p in PHASES if p.required] == ["e1", "br", "e2"]


def test_bounds_follow_the_study_scale_or_the_phase() -> None:
    assert phases.E1.range.bounds(scale_min=3, scale_max=77) == (3, 77)
    assert phases.MEMORY.range.bounds(scale_min=10, scale_max=90) == (10, 90)
    assert phases.BR.range.bounds(scale_min=3, scale_max=77) == (0, 100)
    assert phases.VIVIDNESS.range.bounds(scale_min=3, scale_max=77) == (1, 6)
    # A study's scale can never be wider than a percentage: the database's own limit.
    assert {
        (p.range.low, p.range.high) for p in PHASES if p.range.source is RangeSource.STUDY_SCALE
    } == {(0, 100)}


def test_block_phases_follow_the_flags() -> None:
    none: frozenset[str] = frozenset()
    every = frozenset(phases.STEP_FLAGS)
    assert [p.name for p in phases.block_phases(phases.BLOCK1, none)] == ["e1", "br"]
    assert [p.name for p in phases.block_phases(phases.BLOCK1, every)] == [
        "e1",
        "ebr1",
        "br",
        "confidence",
    ]
    assert [p.name for p in phases.block_phases(phases.BLOCK2, every)] == ["e2", "ebr2"]
    assert phases.block_phases(phases.RATINGS_BLOCK, none) == ()
    assert {p.kind for p in phases.block_phases(phases.RATINGS_BLOCK, every)} == {Kind.RATING}


@pytest.mark.django_db
def test_every_flag_is_a_boolean_field_of_the_study() -> None:
    from trials.models import Study

    for flag in phases.STEP_FLAGS:
        assert Study._meta.get_field(flag).get_internal_type() == "BooleanField"
