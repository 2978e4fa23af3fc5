"""The one rule of an acceptable answer (protocol.answers), on the protocol's own cases."""

from protocol import phases
from protocol.answers import Refusal, answer_refusal

STUDY = {"scale_min": 3, "scale_max": 77, "min_br_view_ms": 2000}


def test_an_estimate_within_the_study_scale() -> None:
    for value in (3, 40, 77):
        assert (
            answer_refusal(phase=phases.E1, value=value, rt_ms=0, base_rate=None, **STUDY) is None
        )
    assert answer_refusal(
        phase=phases.MEMORY, value=2, rt_ms=900, base_rate=None, **STUDY
    ) == Refusal("value", "value must be a whole number from 3 to 77.", "Must be between 3 and 77.")
    assert answer_refusal(
        phase=phases.EBR2, value=78, rt_ms=900, base_rate=None, **STUDY
    ) == Refusal("value", "value must be a whole number from 3 to 77.", "Must be between 3 and 77.")


def test_a_rating_on_its_own_scale_whatever_the_study() -> None:
    assert answer_refusal(phase=phases.AROUSAL, value=6, rt_ms=1, base_rate=None, **STUDY) is None
    assert answer_refusal(phase=phases.CONFIDENCE, value=7, rt_ms=1, base_rate=None, **STUDY) == (
        Refusal("value", "value must be a whole number from 1 to 6.", "Must be between 1 and 6.")
    )


def test_a_base_rate_screen_shows_the_base_rate_long_enough() -> None:
    br = phases.BR
    assert answer_refusal(phase=br, value=30, rt_ms=2000, base_rate=30, **STUDY) is None
    assert answer_refusal(phase=br, value=31, rt_ms=2000, base_rate=30, **STUDY) == Refusal(
        "value", "The base rate shown was 30, not 31.", "Must be the base rate displayed (30)."
    )
    assert answer_refusal(phase=br, value=30, rt_ms=1999, base_rate=30, **STUDY) == Refusal(
        "rt_ms", "The base rate must stay on screen at least 2000 ms.", "At least 2000."
    )
    # A percentage outside the study's scale is still a base rate (0-100).
    assert answer_refusal(phase=br, value=90, rt_ms=2500, base_rate=90, **STUDY) is None
    assert answer_refusal(phase=br, value=101, rt_ms=2500, base_rate=None, **STUDY) == Refusal(
        "value", "value must be a whole number from 0 to 100.", "Must be between 0 and 100."
    )
    # Base rate unknown (the fast path): the viewing time is still checked here.
    assert answer_refusal(phase=br, value=12, rt_ms=2500, base_rate=None, **STUDY) is None
    assert answer_refusal(phase=br, value=12, rt_ms=10, base_rate=None, **STUDY) is not None
