"""Whether an answer is acceptable: one rule, which every path that stores an answer calls.

Pure (no Django import). The answer's fields arrive through one of two parsers (the API's
serializer, or the fast reader of the usual body in trials/api/participant.py) and are
stored by one of two paths (the single-statement path for the usual answer, or the
general path that explains every refusal, in trials/services/responses.py); all of them
read their limits here, and both storing paths ask `answer_refusal` whether to refuse.
"""

from dataclasses import dataclass
from typing import Final

from protocol.phases import Kind, Phase

# What the answer's fields can hold at all, before any phase's own range: the value is a
# smallint column, a reaction time longer than a day is not one, an event code is short.
VALUE_MIN: Final = -32768
VALUE_MAX: Final = 32767
RT_MS_MAX: Final = 86_400_000
EVENT_CODE_MAX: Final = 32


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an answer is refused: the field at fault, the message, the field's own line."""

    field: str
    message: str
    detail: str


def answer_refusal(
    *,
    phase: Phase,
    value: int,
    rt_ms: int,
    scale_min: int,
    scale_max: int,
    min_br_view_ms: int,
    base_rate: int | None,
) -> Refusal | None:
    """None when the answer to this phase is acceptable in this study, else why not.

    The value must be within the phase's range (the study's scale, or the phase's own); a
    base-rate screen's value must be the base rate shown, after its minimum viewing time.
    `base_rate` None leaves that equality to the caller: the fast path has its statement
    store nothing unless the trial's base rate equals the value, and hands any other case
    to the general path, which knows the base rate and asks again.
    """
    low, high = phase.range.bounds(scale_min=scale_min, scale_max=scale_max)
    if not low <= value <= high:
        return Refusal(
            "value",
            f"value must be a whole number from {low} to {high}.",
            f"Must be between {low} and {high}.",
        )
    if phase.kind is Kind.BASE_RATE:
        if base_rate is not None and value != base_rate:
            return Refusal(
                "value",
                f"The base rate shown was {base_rate}, not {value}.",
                f"Must be the base rate displayed ({base_rate}).",
            )
        if rt_ms < min_br_view_ms:
            return Refusal(
                "rt_ms",
                f"The base rate must stay on screen at least {min_br_view_ms} ms.",
                f"At least {min_br_view_ms}.",
            )
    return None
