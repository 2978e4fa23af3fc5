"""trials.visits: each visit's window and status, from its anchor (pure, property-tested)."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st

from trials.visits import (
    PENDING,
    Anchor,
    TimepointSpec,
    VisitRecord,
    VisitStatus,
    anchor_problem,
    visit_due,
    visit_next,
    visits_compute,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)
# The study this platform exists for: baseline, +4 h after the infusion, +7 days.
BASELINE = TimepointSpec(1, "baseline", Anchor.PREVIOUS, timedelta(0), None)
H4 = TimepointSpec(2, "h4", Anchor.STAFF, 4 * H, 16 * H)
D7 = TimepointSpec(3, "d7", Anchor.FIRST, 7 * D, 8 * D)
DESIGN = [BASELINE, H4, D7]


def compute(records, *, staff=None, now, timepoints=DESIGN):  # type: ignore[no-untyped-def]
    return visits_compute(
        timepoints=timepoints, records=records, enrolled_at=T0, staff_anchor_at=staff, now=now
    )


def test_a_new_participant_has_the_first_visit_open_and_the_rest_unknown() -> None:
    visits = compute({}, now=T0 + H)
    assert [(v.timepoint.label, v.status) for v in visits] == [
        ("baseline", "open"),
        ("h4", "upcoming"),
        ("d7", "upcoming"),
    ]
    assert (visits[0].opens_at, visits[0].closes_at) == (T0, None)
    assert [(v.opens_at, v.closes_at) for v in visits[1:]] == [(None, None), (None, None)]
    assert visit_next(visits) is visits[0]


def test_staff_anchored_visit_waits_for_its_anchor_then_opens_4_hours_after_it() -> None:
    done = {1: VisitRecord(completed_at=T0 + H)}
    visits = compute(done, now=T0 + 2 * H)
    assert [v.status for v in visits] == ["done", "waiting_anchor", "upcoming"]
    assert visits[1].opens_at is None
    infusion = T0 + 3 * H
    before = compute(done, staff=infusion, now=infusion + 3 * H)
    assert before[1].status == "upcoming"
    assert (before[1].opens_at, before[1].closes_at) == (infusion + 4 * H, infusion + 16 * H)
    assert compute(done, staff=infusion, now=infusion + 4 * H)[1].status == "open"
    assert compute(done, staff=infusion, now=infusion + 16 * H)[1].status == "missed"


def test_first_anchored_visit_counts_from_the_first_completion_once_the_one_before_is_over() -> (
    None
):
    done = {1: VisitRecord(completed_at=T0 + H), 2: VisitRecord(completed_at=T0 + 8 * H)}
    visits = compute(done, staff=T0 + 3 * H, now=T0 + 9 * H)
    assert [v.status for v in visits] == ["done", "done", "upcoming"]
    assert (visits[2].opens_at, visits[2].closes_at) == (T0 + H + 7 * D, T0 + H + 8 * D)
    assert visits[2].anchor_at == T0 + H
    # Visit 2 missed: visit 3 still opens from the first visit's completion.
    missed_2 = {1: VisitRecord(completed_at=T0 + H)}
    late = compute(missed_2, staff=T0 + 3 * H, now=T0 + 7 * D + 2 * H)
    assert [v.status for v in late] == ["done", "missed", "open"]
    assert visit_next(late) is late[2]


def test_previous_anchor_after_a_missed_visit_never_opens() -> None:
    chain = [BASELINE, TimepointSpec(2, "b", Anchor.PREVIOUS, H, 2 * H)]
    chain.append(TimepointSpec(3, "c", Anchor.PREVIOUS, H, None))
    visits = compute({1: VisitRecord(completed_at=T0)}, now=T0 + 3 * H, timepoints=chain)
    assert [v.status for v in visits] == ["done", "missed", "missed"]
    assert visit_next(visits) is None


def test_an_abandoned_session_is_missed_and_never_reopened() -> None:
    visits = compute(
        {1: VisitRecord(completed_at=T0), 2: VisitRecord(abandoned=True)},
        staff=T0 + H,
        now=T0 + 6 * H,
    )
    assert visits[1].status == "missed"


def test_a_completion_after_the_close_is_still_done() -> None:
    late = T0 + H + 20 * H
    visits = compute(
        {1: VisitRecord(completed_at=T0 + H), 2: VisitRecord(completed_at=late)},
        staff=T0 + H,
        now=late + H,
    )
    assert visits[1].status == "done"
    assert visits[1].completed_at == late


def test_due_today_is_a_window_that_is_open_during_the_day() -> None:
    done = {1: VisitRecord(completed_at=T0)}
    day = datetime(2026, 3, 1, tzinfo=UTC)
    visits = compute(done, staff=T0, now=T0 + H)  # h4 opens at 13:00, closes at 01:00
    assert visits[1].status == "upcoming"
    assert visit_due(visits[1], day_start=day, day_end=day + D) is True
    assert visit_due(visits[1], day_start=day + 2 * D, day_end=day + 3 * D) is False
    assert visit_due(visits[0], day_start=day, day_end=day + D) is False  # done


def test_a_window_spanning_a_daylight_saving_change_is_elapsed_time() -> None:
    # Paris moves from CET to CEST at 02:00 on 29 March 2026: a 4 h window opening at
    # 00:30 local closes at 05:30 local, 4 real hours later.
    paris = ZoneInfo("Europe/Paris")
    done = datetime(2026, 3, 28, 23, 30, tzinfo=UTC)  # 00:30 CET
    spec = [BASELINE, TimepointSpec(2, "next", Anchor.PREVIOUS, timedelta(0), 4 * H)]
    visit = compute({1: VisitRecord(completed_at=done)}, now=done, timepoints=spec)[1]
    assert visit.opens_at is not None and visit.closes_at is not None
    assert visit.closes_at - visit.opens_at == 4 * H
    assert visit.opens_at.astimezone(paris).strftime("%H:%M %Z") == "00:30 CET"
    assert visit.closes_at.astimezone(paris).strftime("%H:%M %Z") == "05:30 CEST"


def test_anchor_refused_before_the_previous_completion() -> None:
    done = {1: VisitRecord(completed_at=T0 + 2 * H)}
    problem = anchor_problem(
        at=T0 + H,
        timepoints=DESIGN,
        records=done,
        enrolled_at=T0,
        staff_anchor_at=None,
        now=T0 + 3 * H,
    )
    assert problem is not None and "before the completion of visit 'baseline'" in problem


def test_anchor_refused_when_it_closes_a_window_not_done() -> None:
    done = {1: VisitRecord(completed_at=T0)}
    problem = anchor_problem(
        at=T0 + H, timepoints=DESIGN, records=done, enrolled_at=T0, staff_anchor_at=None, now=T0 + D
    )
    assert problem == (
        "With this anchor the window of visit 'h4' would already be closed "
        f"({(T0 + 17 * H).isoformat()})."
    )


def test_anchor_refused_when_it_moves_past_a_visit_already_done() -> None:
    done = {1: VisitRecord(completed_at=T0), 2: VisitRecord(completed_at=T0 + 5 * H)}
    problem = anchor_problem(
        at=T0 + 3 * H,
        timepoints=DESIGN,
        records=done,
        enrolled_at=T0,
        staff_anchor_at=T0 + H,
        now=T0 + 6 * H,
    )
    assert problem is not None and problem.startswith("Visit 'h4' was done at")


def test_anchor_accepted_in_the_past_and_in_the_future_when_consistent() -> None:
    done = {1: VisitRecord(completed_at=T0)}
    for at in (T0 + H, T0 + 10 * D):
        assert (
            anchor_problem(
                at=at,
                timepoints=DESIGN,
                records=done,
                enrolled_at=T0,
                staff_anchor_at=None,
                now=T0 + 2 * H,
            )
            is None
        )


_durations = st.integers(0, 24 * 14).map(lambda h: timedelta(hours=h))


@st.composite
def _designs(draw: st.DrawFn) -> list[TimepointSpec]:
    n = draw(st.integers(1, 5))
    specs = []
    for order in range(1, n + 1):
        opens = draw(_durations)
        width = draw(
            st.one_of(st.none(), st.integers(1, 24 * 14).map(lambda h: timedelta(hours=h)))
        )
        specs.append(
            TimepointSpec(
                order,
                f"t{order}",
                draw(st.sampled_from(list(Anchor))),
                opens,
                None if width is None else opens + width,
            )
        )
    return specs


@settings(max_examples=300, deadline=None)
@given(
    design=_designs(),
    done_hours=st.lists(st.one_of(st.none(), st.integers(0, 24 * 30)), min_size=5, max_size=5),
    staff=st.one_of(st.none(), st.integers(0, 24 * 30)),
    now_hours=st.integers(0, 24 * 40),
)
def test_properties_of_every_schedule(
    design: list[TimepointSpec], done_hours: list[int | None], staff: int | None, now_hours: int
) -> None:
    # Completions in order and in time, as a real participant's are.
    records, clock = {}, T0
    for spec, hours in zip(design, done_hours, strict=False):
        if hours is None:
            break
        clock = clock + timedelta(hours=hours)
        records[spec.order] = VisitRecord(completed_at=clock)
    now = max(clock, T0) + timedelta(hours=now_hours)
    staff_at = None if staff is None else T0 + timedelta(hours=staff)
    visits = compute(records, staff=staff_at, now=now, timepoints=design)
    assert [v.timepoint for v in visits] == design
    open_or_later = False
    for index, visit in enumerate(visits):
        assert (visit.status == VisitStatus.DONE) == (visit.completed_at is not None)
        if visit.opens_at is not None and visit.closes_at is not None:
            assert visit.closes_at > visit.opens_at
        if visit.status == VisitStatus.OPEN:
            assert visit.opens_at is not None and visit.opens_at <= now
            assert visit.closes_at is None or now < visit.closes_at
        if visit.status == VisitStatus.WAITING_ANCHOR:
            assert visit.timepoint.anchor is Anchor.STAFF and staff_at is None and index > 0
        # At most one visit is ahead with a known window; everything after it waits.
        if open_or_later:
            assert visit.status == VisitStatus.UPCOMING and visit.opens_at is None
        if visit.status in PENDING:
            open_or_later = True
    nxt = visit_next(visits)
    assert nxt is None or nxt.status in PENDING
    # A later clock never turns a missed visit back into anything else.
    later = compute(records, staff=staff_at, now=now + 30 * D, timepoints=design)
    for a, b in zip(visits, later, strict=True):
        if a.status == VisitStatus.MISSED:
            assert b.status == VisitStatus.MISSED
