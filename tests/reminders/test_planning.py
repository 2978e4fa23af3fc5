"""The pure rule of which reminder a visit calls for, and the retry delays."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from reminders.planning import Due, reminder_kind_now, reminders_due, retry_delay

T0 = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@dataclass(frozen=True)
class Tp:
    order: int


@dataclass(frozen=True)
class V:
    timepoint: Tp
    status: str
    opens_at: datetime | None
    closes_at: datetime | None


def visit(order: int, status: str = "open", opens: float = -1, closes: float | None = 10) -> V:
    return V(Tp(order), status, T0 + opens * H, None if closes is None else T0 + closes * H)


def test_an_open_window_calls_for_the_opening_reminder_then_the_closing_one() -> None:
    v = visit(1, opens=0, closes=48)
    kinds = [
        reminder_kind_now(v, now=T0 + h * H, closing_hours=24, first_order=0)
        for h in (-0.01, 0, 23.9, 24, 47.9, 48)
    ]
    assert kinds == [None, "opens", "opens", "closing", "closing", None]


def test_no_closing_reminder_without_a_close_or_with_zero_hours() -> None:
    assert reminder_kind_now(visit(1, closes=None), now=T0, closing_hours=24, first_order=0) == (
        "opens"
    )
    assert reminder_kind_now(visit(1, closes=2), now=T0, closing_hours=0, first_order=0) == "opens"


def test_only_open_visits_after_the_first_are_reminded() -> None:
    visits = [
        visit(0),
        visit(1, status="done"),
        visit(2, status="upcoming", opens=-1),
        visit(3, status="missed"),
        visit(4, status="waiting_anchor"),
        visit(5, opens=-2, closes=3),
    ]
    assert reminders_due(visits, now=T0, closing_hours=4) == [
        Due(5, "closing", T0 - 2 * H, T0 + 3 * H)
    ]
    assert reminders_due([], now=T0, closing_hours=4) == []


def test_retry_delays_double_up_to_the_cap() -> None:
    delays = [retry_delay(attempts=a, base_seconds=60, max_seconds=480) for a in range(1, 7)]
    assert delays == [60, 120, 240, 480, 480, 480]
