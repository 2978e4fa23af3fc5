"""The ordered steps of one session, derived from its stored plan and the study's flags.

Pure (no Django import): the server's ordering check and the session state both read it.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

RATING_PHASES: Final = ("vividness", "familiarity", "experience", "arousal", "negativity")


@dataclass(frozen=True, slots=True)
class Step:
    event_id: int
    code: str
    block: str
    phase: str
    practice: bool


def _phases(config: Mapping[str, bool]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    block1 = ["e1"]
    if config.get("collect_ebr"):
        block1.append("ebr1")
    block1.append("br")
    if config.get("collect_confidence"):
        block1.append("confidence")
    block2 = ("e2", "ebr2") if config.get("collect_ebr") else ("e2",)
    return tuple(block1), block2


def _sections(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[tuple[Sequence[Sequence[Any]], str, tuple[str, ...], bool]]:
    """(events, block, phases per event, practice) in the order the session runs them."""
    block1, block2 = _phases(config)
    sections: list[tuple[Sequence[Sequence[Any]], str, tuple[str, ...], bool]] = [
        (plan.get("practice", []), "practice", block1, True),
        (plan["order1"], "block1", block1, False),
        (plan["order2"], "block2", block2, False),
    ]
    if config.get("memory_test"):
        sections.append((plan["order1"], "memory", ("memory",), False))
    if config.get("ratings"):
        sections.append((plan["order2"], "ratings", RATING_PHASES, False))
    return sections


def session_steps(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[Step]:
    """Every step of a session, in the order it must be answered."""
    return [
        Step(event_id, code, block, phase, practice)
        for events, block, phases, practice in _sections(plan, config)
        for event_id, code in events
        for phase in phases
    ]


def steps_total(plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]) -> int:
    """len(session_steps(plan, config)), without building the steps."""
    return sum(len(events) * len(phases) for events, _, phases, _ in _sections(plan, config))


def step_at(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool], index: int
) -> Step | None:
    """session_steps(plan, config)[index] without building the others; None past the end.

    The answer path reads one step per request: building all of them (124 in the demo
    study, 400 with every option) cost more than the rest of the request's Python.
    """
    if index < 0:
        return None
    for events, block, phases, practice in _sections(plan, config):
        size = len(events) * len(phases)
        if index < size:
            event_id, code = events[index // len(phases)]
            return Step(event_id, code, block, phases[index % len(phases)], practice)
        index -= size
    return None
