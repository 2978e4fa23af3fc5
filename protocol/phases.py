"""Every phase a response can have, declared once: its kind, its value range, its flag.

A phase is one answer per event of a session ("e1": the first estimate of one's own
risk). Everything else reads this declaration: the response model's choices and check
constraints, the session's steps (trials.steps), the acceptance of an answer, the session
state the browser is sent (each step's `kind`, which is all task.js needs to render it),
the trials export and its codebook, the import of trial files, and the strict CSV reader
of scoring.io. tests/protocol/test_declared_once.py fails when a list of phase names is
written anywhere else.

Pure (no Django import) and strictly typed.

Adding a per-event phase: one `Phase(...)` below, placed in PHASES where the session asks
it and in TRIAL_COLUMNS where the trials export shows it; then a migration (the model's
choices and constraints follow), its prompt in trials/ui_strings.py (`<name>_prompt` for a
rating) with its French, and the goldens the new export column changes.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Final


class Kind(StrEnum):
    """What the participant is shown, and so how the browser renders the step."""

    ESTIMATE_SELF = "estimate_self"  # a percentage about oneself (E1, E2)
    ESTIMATE_OTHER = "estimate_other"  # a percentage about an average person (eBR1, eBR2)
    RECALL = "recall"  # the base rate recalled (memory test)
    BASE_RATE = "base_rate"  # the base rate shown; its value is the base rate displayed
    RATING = "rating"  # a rating on a fixed scale (1-6), prompts keyed by the phase's name
    # A questionnaire item: its question and its answers come from an instrument's file
    # (instruments/definition.py), not from an event.
    ITEM = "item"


class RangeSource(StrEnum):
    """Where a phase's bounds come from."""

    FIXED = "fixed"  # the phase's own low..high
    STUDY_SCALE = "study_scale"  # the study's response scale, itself within low..high
    INSTRUMENT = "instrument"  # the item's options, or its min..max, in the instrument's file


@dataclass(frozen=True, slots=True)
class ValueRange:
    """A value's bounds: fixed, or the study's scale (then low..high is the widest it may be)."""

    source: RangeSource
    low: int
    high: int

    def bounds(self, *, scale_min: int, scale_max: int) -> tuple[int, int]:
        """The inclusive bounds an answer must be within in a study with this scale."""
        if self.source is RangeSource.STUDY_SCALE:
            return scale_min, scale_max
        return self.low, self.high


def gettext_noop(message: str) -> str:
    """Marks a label for makemessages, which looks for this name, without importing Django."""
    return message


PERCENT: Final = ValueRange(RangeSource.FIXED, 0, 100)
STUDY_SCALE: Final = ValueRange(RangeSource.STUDY_SCALE, 0, 100)
RATING_1_6: Final = ValueRange(RangeSource.FIXED, 1, 6)

# The blocks of a session, in the order they run (practice runs block 1's phases).
PRACTICE: Final = "practice"
BLOCK1: Final = "block1"
BLOCK2: Final = "block2"
MEMORY_BLOCK: Final = "memory"
RATINGS_BLOCK: Final = "ratings"
# The questionnaire items asked before and after the task (trials.steps).
QUESTIONNAIRE: Final = "questionnaire"


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    kind: Kind
    range: ValueRange
    block: str
    # The study's boolean field that adds this phase to its sessions; None: always asked.
    flag: str | None
    # The codebook's meaning of the phase's trials-export column.
    meaning: str
    # Its name in words, a msgid (translated where it is shown, e.g. dashboard/forms.py).
    label: str = ""
    # Whether the trials export has its reaction time (rt_<name>_ms).
    rt_column: bool = False

    @property
    def required(self) -> bool:
        """Asked in every session: a trial is scored from these."""
        return self.flag is None


E1: Final = Phase(
    "e1", Kind.ESTIMATE_SELF, STUDY_SCALE, BLOCK1, None,
    "First estimate of one's own risk (block 1).", rt_column=True,
    label=gettext_noop("first estimate"),
)  # fmt: skip
EBR1: Final = Phase(
    "ebr1", Kind.ESTIMATE_OTHER, STUDY_SCALE, BLOCK1, "collect_ebr",
    "First estimate of the base rate, where collected.",
    label=gettext_noop("first estimate for an average person"),
)  # fmt: skip
BR: Final = Phase(
    "br", Kind.BASE_RATE, PERCENT, BLOCK1, None,
    "Base rate shown (drawn from E1 in adaptive mode).",
    label=gettext_noop("base rate shown"),
)  # fmt: skip
CONFIDENCE: Final = Phase(
    "confidence", Kind.RATING, RATING_1_6, BLOCK1, "collect_confidence",
    "Confidence in the base rate, where collected.",
    label=gettext_noop("confidence in the base rate"),
)  # fmt: skip
E2: Final = Phase(
    "e2", Kind.ESTIMATE_SELF, STUDY_SCALE, BLOCK2, None,
    "Second estimate of one's own risk (block 2).", rt_column=True,
    label=gettext_noop("second estimate"),
)  # fmt: skip
EBR2: Final = Phase(
    "ebr2", Kind.ESTIMATE_OTHER, STUDY_SCALE, BLOCK2, "collect_ebr",
    "Second estimate of the base rate, where collected.",
    label=gettext_noop("second estimate for an average person"),
)  # fmt: skip
MEMORY: Final = Phase(
    "memory", Kind.RECALL, STUDY_SCALE, MEMORY_BLOCK, "memory_test",
    "Base rate recalled in the memory test, where it ran.",
    label=gettext_noop("base rate recalled"),
)  # fmt: skip
VIVIDNESS: Final = Phase(
    "vividness", Kind.RATING, RATING_1_6, RATINGS_BLOCK, "ratings",
    "How vividly the event can be imagined.",
    label=gettext_noop("vividness"),
)  # fmt: skip
FAMILIARITY: Final = Phase(
    "familiarity", Kind.RATING, RATING_1_6, RATINGS_BLOCK, "ratings",
    "How familiar the event is.",
    label=gettext_noop("familiarity"),
)  # fmt: skip
EXPERIENCE: Final = Phase(
    "experience", Kind.RATING, RATING_1_6, RATINGS_BLOCK, "ratings",
    "Prior experience of the event.",
    label=gettext_noop("experience"),
)  # fmt: skip
AROUSAL: Final = Phase(
    "arousal", Kind.RATING, RATING_1_6, RATINGS_BLOCK, "ratings",
    "Emotional arousal the event causes.",
    label=gettext_noop("arousal"),
)  # fmt: skip
NEGATIVITY: Final = Phase(
    "negativity", Kind.RATING, RATING_1_6, RATINGS_BLOCK, "ratings",
    "How negative the event is.",
    label=gettext_noop("negativity"),
)  # fmt: skip

# A questionnaire item of the session: one step per item of each self-report instrument
# attached to the timepoint, before or after the task. Not one of PHASES: it is not asked
# per event, its answers are instruments' ItemAnswer rows (never the responses table, the
# trials export or scoring.io), and its bounds are the item's own.
ITEM: Final = Phase(
    "item", Kind.ITEM, ValueRange(RangeSource.INSTRUMENT, -32767, 32767), QUESTIONNAIRE, None,
    "A questionnaire item's answer (the questionnaires export).",
)  # fmt: skip

# Every phase, in the order a session asks them within a block (and the order of the API's
# phase enum and the model's choices).
PHASES: Final[tuple[Phase, ...]] = (
    E1, EBR1, BR, CONFIDENCE, E2, EBR2, MEMORY,
    VIVIDNESS, FAMILIARITY, EXPERIENCE, AROUSAL, NEGATIVITY,
)  # fmt: skip
# The trials export's order of the phase columns (a contract: tests/api/golden/trials.*;
# confidence has come after block 2's estimates since the first export).
TRIAL_COLUMNS: Final[tuple[Phase, ...]] = (
    E1, EBR1, BR, E2, EBR2, CONFIDENCE, MEMORY,
    VIVIDNESS, FAMILIARITY, EXPERIENCE, AROUSAL, NEGATIVITY,
)  # fmt: skip

# The estimate an adaptive base rate is drawn from (BR = E1 -/+ d); the server's answer to
# it carries the trial's base rate.
BASE_RATE_FROM: Final = E1

BY_NAME: Final[dict[str, Phase]] = {p.name: p for p in PHASES}
NAMES: Final[tuple[str, ...]] = tuple(p.name for p in PHASES)
# The study flags that shape a session's steps, in declaration order.
STEP_FLAGS: Final[tuple[str, ...]] = tuple(dict.fromkeys(p.flag for p in PHASES if p.flag))


def phase_named(name: str) -> Phase | None:
    """The declared phase of that name; None for anything else."""
    return BY_NAME.get(name)


def names(
    *, kinds: frozenset[Kind] | None = None, source: RangeSource | None = None
) -> tuple[str, ...]:
    """The names of the phases of these kinds and/or range source, in declaration order."""
    return tuple(
        p.name
        for p in PHASES
        if (kinds is None or p.kind in kinds) and (source is None or p.range.source is source)
    )


def block_phases(block: str, flags: frozenset[str]) -> tuple[Phase, ...]:
    """The phases a block asks of each event, given the study flags that are on."""
    return tuple(p for p in PHASES if p.block == block and (p.flag is None or p.flag in flags))
