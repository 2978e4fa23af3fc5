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


def session_steps(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[Step]:
    """Every step of a session, in the order it must be answered."""
    block1_phases = ["e1"]
    if config.get("collect_ebr"):
        block1_phases.append("ebr1")
    block1_phases.append("br")
    if config.get("collect_confidence"):
        block1_phases.append("confidence")
    block2_phases = ["e2", "ebr2"] if config.get("collect_ebr") else ["e2"]

    steps: list[Step] = []
    for event_id, code in plan.get("practice", []):
        steps.extend(Step(event_id, code, "practice", p, True) for p in block1_phases)
    for event_id, code in plan["order1"]:
        steps.extend(Step(event_id, code, "block1", p, False) for p in block1_phases)
    for event_id, code in plan["order2"]:
        steps.extend(Step(event_id, code, "block2", p, False) for p in block2_phases)
    if config.get("memory_test"):
        steps.extend(Step(e, c, "memory", "memory", False) for e, c in plan["order1"])
    if config.get("ratings"):
        for event_id, code in plan["order2"]:
            steps.extend(Step(event_id, code, "ratings", p, False) for p in RATING_PHASES)
    return steps
