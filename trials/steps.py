"""The ordered steps of one session, derived from its stored plan and the study's flags.

Pure (no Django import): the server's ordering check and the session state both read it.

A plan may list questionnaire items asked before the task (`items_before`) and after it
(`items_after`), each `[instrument_id, instrument_code, item_code]`, drawn from the
instruments attached to the session's timepoint when the session was created (so that a
later change of the study's setup never moves the steps of a session under way). Each item
is one step: phase `protocol.phases.ITEM`, block `protocol.phases.QUESTIONNAIRE`.
"""

import operator
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from protocol import phases


@dataclass(frozen=True, slots=True)
class Step:
    """One answer of the session. A task step names its event (`event_id`, `code`); a
    questionnaire item names its instrument and item (`event_id` 0, `code` empty)."""

    event_id: int
    code: str
    block: str
    phase: str
    practice: bool
    instrument: str = ""
    item: str = ""
    instrument_id: int = 0

    @property
    def is_item(self) -> bool:
        return self.phase == phases.ITEM.name


# (block, the plan's event order it runs, the block whose phases it asks, practice).
_SECTIONS: Final = (
    (phases.PRACTICE, "practice", phases.BLOCK1, True),
    (phases.BLOCK1, "order1", phases.BLOCK1, False),
    (phases.BLOCK2, "order2", phases.BLOCK2, False),
    (phases.MEMORY_BLOCK, "order1", phases.MEMORY_BLOCK, False),
    (phases.RATINGS_BLOCK, "order2", phases.RATINGS_BLOCK, False),
)

_Make = Callable[[Sequence[Any], str], Step]
_ITEM_PHASES: Final = (phases.ITEM.name,)


_FLAGS_OF: Final = operator.itemgetter(*phases.STEP_FLAGS)


@cache
def _task_step(block: str, practice: bool) -> _Make:
    def make(entry: Sequence[Any], phase: str) -> Step:
        return Step(entry[0], entry[1], block, phase, practice)

    return make


def _item_step(entry: Sequence[Any], phase: str) -> Step:
    return Step(0, "", phases.QUESTIONNAIRE, phase, False, entry[1], entry[2], entry[0])


@cache
def _layout(on: tuple[bool, ...]) -> tuple[tuple[str, tuple[str, ...], _Make], ...]:
    """(plan key, phases per entry, step maker) for one setting of the step flags, in the
    order the session runs them: the items before the task, its blocks, the items after.

    The phases of a block are protocol.phases' in declaration order, those whose flag is on;
    a block left with none (no memory test, no ratings) is left out.
    """
    flags = frozenset(flag for flag, is_on in zip(phases.STEP_FLAGS, on, strict=True) if is_on)
    layout: list[tuple[str, tuple[str, ...], _Make]] = [("items_before", _ITEM_PHASES, _item_step)]
    for block, order, asks, practice in _SECTIONS:
        names = tuple(p.name for p in phases.block_phases(asks, flags))
        if names:
            layout.append((order, names, _task_step(block, practice)))
    layout.append(("items_after", _ITEM_PHASES, _item_step))
    return tuple(layout)


# The plan's keys that every plan has (the others, practice and the items, may be absent).
_REQUIRED: Final = frozenset({"order1", "order2"})


def _sections(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[tuple[Sequence[Sequence[Any]], tuple[str, ...], _Make]]:
    """(entries, phases per entry, step maker) in the order the session runs them."""
    try:
        # The answer path calls this on every request: one C call, not a generator.
        on = _FLAGS_OF(config)
    except KeyError:  # a config without every flag: a missing one is off
        on = tuple(config.get(flag, False) for flag in phases.STEP_FLAGS)
    layout = _layout(on)
    return [
        (plan[key] if key in _REQUIRED else plan.get(key, []), asked, make)
        for key, asked, make in layout
    ]


def session_steps(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]
) -> list[Step]:
    """Every step of a session, in the order it must be answered."""
    return [
        make(entry, phase)
        for entries, asked, make in _sections(plan, config)
        for entry in entries
        for phase in asked
    ]


def steps_total(plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool]) -> int:
    """len(session_steps(plan, config)), without building the steps."""
    return sum(len(entries) * len(asked) for entries, asked, _ in _sections(plan, config))


def step_at(
    plan: Mapping[str, Sequence[Sequence[Any]]], config: Mapping[str, bool], index: int
) -> Step | None:
    """session_steps(plan, config)[index] without building the others; None past the end.

    The answer path reads one step per request: building all of them (124 in the demo
    study, 400 with every option) cost more than the rest of the request's Python.
    """
    if index < 0:
        return None
    for entries, asked, make in _sections(plan, config):
        size = len(entries) * len(asked)
        if index < size:
            return make(entries[index // len(asked)], asked[index % len(asked)])
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
