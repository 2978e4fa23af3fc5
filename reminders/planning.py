"""Which reminders a participant's visits call for now: pure, no Django import.

Fed by the visits of trials.visits (`visits_compute`): a reminder follows a visit's window,
never a second computation of it. Two reminders per visit after the first (the first
opens at enrolment, with the participant on the page):
- `opens`: once the window is open;
- `closing`: `closing_hours` before it closes (none when the window never closes, or
  when `closing_hours` is 0).
Inside the closing period only the closing reminder is due, so that a participant who gave
an address late, or whose opening reminder could not be sent in time, gets one message
rather than two within minutes.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

OPENS: Final = "opens"
CLOSING: Final = "closing"
KINDS: Final = (OPENS, CLOSING)
OPEN_STATUS: Final = "open"


class TimepointLike(Protocol):
    @property
    def order(self) -> int: ...


class VisitLike(Protocol):
    """The part of trials.visits.Visit read here."""

    @property
    def timepoint(self) -> TimepointLike: ...
    @property
    def status(self) -> str: ...
    @property
    def opens_at(self) -> datetime | None: ...
    @property
    def closes_at(self) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Due:
    """A reminder that is due: which visit (timepoint order), which kind, which window."""

    order: int
    kind: str
    opens_at: datetime
    closes_at: datetime | None


def reminder_kind_now(
    visit: VisitLike, *, now: datetime, closing_hours: int, first_order: int
) -> str | None:
    """The kind of reminder the visit calls for at `now`, or None."""
    if visit.timepoint.order == first_order or str(visit.status) != OPEN_STATUS:
        return None
    if visit.opens_at is None or now < visit.opens_at:
        return None
    closes_at = visit.closes_at
    if closes_at is not None and now >= closes_at:
        return None
    if (
        closes_at is not None
        and closing_hours > 0
        and now >= closes_at - timedelta(hours=closing_hours)
    ):
        return CLOSING
    return OPENS


def reminders_due(visits: Sequence[VisitLike], *, now: datetime, closing_hours: int) -> list[Due]:
    """The reminders one participant's visits call for at `now`."""
    if not visits:
        return []
    first_order = min(v.timepoint.order for v in visits)
    due = []
    for visit in visits:
        kind = reminder_kind_now(
            visit, now=now, closing_hours=closing_hours, first_order=first_order
        )
        if kind is not None and visit.opens_at is not None:
            due.append(Due(visit.timepoint.order, kind, visit.opens_at, visit.closes_at))
    return due


def retry_delay(*, attempts: int, base_seconds: int, max_seconds: int) -> int:
    """Seconds before the next attempt after `attempts` failed ones: doubling, capped."""
    return int(min(max_seconds, base_seconds * 2 ** max(0, attempts - 1)))
