"""The ordered steps of one session, derived from its stored plan and the study's flags.

Pure (no Django import): the server's ordering check and the session state both read it.
"""

import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from protocol import phases


@dataclass(frozen=True, slots=True)
class Step:
    event_id: int
    code: str
    block: str
    phase: str
    practice: bool


# (block, the plan's event order it runs, the block whose phases it asks, practice).
_SECTIONS: Final = (
    (phases.PRACTICE, "practice", phases.BLOCK1, True),
    (phases.BLOCK1, "order1", phases.BLOCK1, False),
    (phases.BLOCK2, "order2", phases.BLOCK2, False),
    (phases.MEMORY_BLOCK, "order1", phases.MEMORY_BLOCK, False),
    (phases.RATINGS_BLOCK, "order2", phases.RATINGS_BLOCK, False),
)


_FLAGS_OF: Final = operator.itemgetter(*phases.STEP_FLAGS)


@cache
def _layout(on: tuple[bool, ...]) -> tuple[tuple[str, str, tuple[str, ...], bool], ...]:
    """(block, event order, phases per event, practice) for one setting of the step flags.

    The phases of a block are protocol.phases' in declaration order, those whose flag is on;
    a block left with none (no memory test, no ratings) is left out.
    """
    flags = frozenset(flag for flag, is_on in zip(phases.STEP_FLAGS, on, strict=True) if is_on)
    layout = []
    for block, order, asks, practice in _SECTIONS:
        names = tuple(p.name for p in phases.block_phases(asks, flags))
        if names:
            layout.append((block, order, names, practice))
    return tuple(layout)


def _sections(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[tuple[Sequence[Sequence[Any]], str, tuple[str, ...], bool]]:
    """(events, block, phases per event, practice) in the order the session runs them."""
    try:
        # The answer path calls this on every request: one C call, not a generator.
        on = _FLAGS_OF(config)
    except KeyError:  # a config without every flag: a missing one is off
        on = tuple(config.get(flag, False) for flag in phases.STEP_FLAGS)
    layout = _layout(on)
    return [
        (plan.get(order, []) if practice else plan[order], block, names, practice)
        for block, order, names, practice in layout
    ]


def session_steps(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[Step]:
    """Every step of a session, in the order it must be answered."""
    return [
        Step(event_id, code, block, phase, practice)
        for events, block, asked, practice in _sections(plan, config)
        for event_id, code in events
        for phase in asked
    ]


def steps_total(plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]) -> int:
    """len(session_steps(plan, config)), without building the steps."""
    return sum(len(events) * len(asked) for events, _, asked, _ in _sections(plan, config))


def step_at(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool], index: int
) -> Step | None:
    """session_steps(plan, config)[index] without building the others; None past the end.

    The answer path reads one step per request: building all of them (124 in the demo
    study, 400 with every option) cost more than the rest of the request's Python.
    """
    if index < 0:
        return None
    for events, block, asked, practice in _sections(plan, config):
        size = len(events) * len(asked)
        if index < size:
            event_id, code = events[index // len(asked)]
            return Step(event_id, code, block, asked[index % len(asked)], practice)
        index -= size
    return None


Planned = Sequence[tuple[int, str]]


def plan_draw(
    practice: Planned, main: Planned, *, adaptive: bool, rng: random.Random
) -> tuple[dict[str, list[list[Any]]], dict[int, str]]:
    """A new session's plan (its event orders) and, in adaptive mode, each event's valence.

    Events are (id, code). Block 1 and block 2 each get their own random order; in adaptive
    mode half the events are planned good news and half bad news, at random. The session
    stores the plan; the dashboard's preview draws one the same way and stores nothing.
    """
    order1 = list(main)
    rng.shuffle(order1)
    order2 = list(main)
    rng.shuffle(order2)
    plan = {
        "practice": [[pk, code] for pk, code in practice],
        "order1": [[pk, code] for pk, code in order1],
        "order2": [[pk, code] for pk, code in order2],
    }
    if not adaptive:
        return plan, {}
    valences = (["good", "bad"] * ((len(order1) + 1) // 2))[: len(order1)]
    rng.shuffle(valences)
    return plan, {pk: v for (pk, _), v in zip(order1, valences, strict=True)}
