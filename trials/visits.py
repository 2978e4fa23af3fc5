"""When each visit of a participant opens and closes, and where it stands now.

Pure (no Django import): the return link, the completion answer's `next_visit`, the
participant API, the dashboard's visits view, the visits export and the reminders all
read `visits_compute`, fed by `trials.selectors.participant_visits` /
`study_visits`. PROTOCOL.md "Visits over days":

- the first visit opens at enrolment and does not close (its window fields are unused);
- a later visit opens `opens_after` its anchor and closes `closes_after` it (or never):
  `previous` = the previous visit's completion, `first` = the first visit's
  completion, `staff` = the participant's staff anchor time (the infusion);
- a visit whose previous visit is neither done nor missed is `upcoming` with no window
  yet (DESIGN.md), so visits are taken in order;
- a staff-anchored visit without its anchor is `waiting_anchor`;
- a visit whose window closed unanswered, or whose session was abandoned, is `missed`;
  a `previous`-anchored visit after a missed one can never open, so it is missed too.
  A missed visit is never reopened.

All times are aware datetimes in UTC; the browser shows them in the participant's zone.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class Anchor(StrEnum):
    PREVIOUS = "previous"
    FIRST = "first"
    STAFF = "staff"


class VisitStatus(StrEnum):
    DONE = "done"
    OPEN = "open"
    UPCOMING = "upcoming"
    WAITING_ANCHOR = "waiting_anchor"
    MISSED = "missed"


# A visit still ahead of the participant: the return link and `next_visit` point at it.
PENDING: Final = frozenset({VisitStatus.OPEN, VisitStatus.UPCOMING, VisitStatus.WAITING_ANCHOR})


@dataclass(frozen=True, slots=True)
class TimepointSpec:
    """A timepoint's window rule, as the study design sets it."""

    order: int
    label: str
    anchor: Anchor
    opens_after: timedelta
    closes_after: timedelta | None


@dataclass(frozen=True, slots=True)
class VisitRecord:
    """What is stored of one visit of a participant: its session's outcome, if any."""

    completed_at: datetime | None = None
    abandoned: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit of one participant, now."""

    timepoint: TimepointSpec
    status: VisitStatus
    anchor_at: datetime | None
    opens_at: datetime | None
    closes_at: datetime | None
    completed_at: datetime | None


def visits_compute(
    *,
    timepoints: Sequence[TimepointSpec],
    records: Mapping[int, VisitRecord],
    enrolled_at: datetime,
    staff_anchor_at: datetime | None,
    now: datetime,
) -> list[Visit]:
    """Every visit of one participant, in timepoint order (`records` keyed by order)."""
    visits: list[Visit] = []
    ordered = sorted(timepoints, key=lambda t: t.order)
    first_done: datetime | None = None
    for index, spec in enumerate(ordered):
        record = records.get(spec.order, VisitRecord())
        previous = visits[-1] if visits else None
        if index == 0:
            anchor_at: datetime | None = enrolled_at
        elif spec.anchor is Anchor.FIRST:
            anchor_at = first_done
        elif spec.anchor is Anchor.STAFF:
            anchor_at = staff_anchor_at
        else:
            anchor_at = previous.completed_at if previous is not None else None
        opens_at = closes_at = None
        if index == 0:
            # The first visit is the enrolment itself: open from consent, never closing (a
            # session left unanswered is closed by the abandon sweep, as before).
            opens_at = enrolled_at
        elif anchor_at is not None:
            opens_at = anchor_at + spec.opens_after
            closes_at = anchor_at + spec.closes_after if spec.closes_after is not None else None
        status = _status(
            record=record,
            previous=previous,
            spec=spec,
            anchor_at=anchor_at,
            opens_at=opens_at,
            closes_at=closes_at,
            now=now,
        )
        if status is VisitStatus.UPCOMING and previous is not None and previous.status in PENDING:
            # The window is not known until the visit before it is over (DESIGN.md).
            opens_at = closes_at = None
        visits.append(Visit(spec, status, anchor_at, opens_at, closes_at, record.completed_at))
        if index == 0:
            first_done = record.completed_at
    return visits


def _status(
    *,
    record: VisitRecord,
    previous: Visit | None,
    spec: TimepointSpec,
    anchor_at: datetime | None,
    opens_at: datetime | None,
    closes_at: datetime | None,
    now: datetime,
) -> VisitStatus:
    if record.completed_at is not None:
        return VisitStatus.DONE
    if record.abandoned:
        return VisitStatus.MISSED
    if previous is not None and previous.status in PENDING:
        return VisitStatus.UPCOMING
    if anchor_at is None:
        if spec.anchor is Anchor.STAFF:
            return VisitStatus.WAITING_ANCHOR
        # `previous` after a missed visit, or `first` after a missed first visit: no anchor
        # will ever come.
        return VisitStatus.MISSED
    assert opens_at is not None
    if now < opens_at:
        return VisitStatus.UPCOMING
    if closes_at is not None and now >= closes_at:
        return VisitStatus.MISSED
    return VisitStatus.OPEN


def visit_next(visits: Sequence[Visit]) -> Visit | None:
    """The first visit still ahead (open, upcoming or waiting for its anchor), if any."""
    return next((v for v in visits if v.status in PENDING), None)


def visit_due(visit: Visit, *, day_start: datetime, day_end: datetime) -> bool:
    """Whether a visit is to be done within [day_start, day_end): open then, not yet done."""
    if visit.status not in (VisitStatus.OPEN, VisitStatus.UPCOMING) or visit.opens_at is None:
        return False
    return visit.opens_at < day_end and (visit.closes_at is None or visit.closes_at > day_start)


def anchor_problem(
    *,
    at: datetime,
    timepoints: Sequence[TimepointSpec],
    records: Mapping[int, VisitRecord],
    enrolled_at: datetime,
    staff_anchor_at: datetime | None,
    now: datetime,
) -> str | None:
    """Why a staff anchor at `at` would be inconsistent, or None when it may be stored.

    Refused: an anchor before the completion of the visit a staff-anchored visit follows
    (the infusion cannot precede the visit before it); an anchor that puts an
    already-done visit before its own window (the anchor moved past what happened); and
    an anchor that closes a window not yet done (the visit would be missed at once).
    """
    before = visits_compute(
        timepoints=timepoints,
        records=records,
        enrolled_at=enrolled_at,
        staff_anchor_at=staff_anchor_at,
        now=now,
    )
    after = visits_compute(
        timepoints=timepoints, records=records, enrolled_at=enrolled_at, staff_anchor_at=at, now=now
    )
    for index, visit in enumerate(after):
        if visit.timepoint.anchor is not Anchor.STAFF or index == 0:
            continue
        previous = after[index - 1]
        if previous.completed_at is not None and at < previous.completed_at:
            return (
                f"The anchor is before the completion of visit '{previous.timepoint.label}' "
                f"({previous.completed_at.isoformat()}), which visit "
                f"'{visit.timepoint.label}' follows."
            )
        if (
            visit.completed_at is not None
            and visit.opens_at is not None
            and visit.completed_at < visit.opens_at
        ):
            return (
                f"Visit '{visit.timepoint.label}' was done at {visit.completed_at.isoformat()}, "
                f"before the window this anchor gives it (opening {visit.opens_at.isoformat()})."
            )
        if visit.status is VisitStatus.MISSED and before[index].status is not VisitStatus.MISSED:
            return (
                f"With this anchor the window of visit '{visit.timepoint.label}' "
                f"would already be closed ({_iso(visit.closes_at)})."
            )
    return None


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "never"
