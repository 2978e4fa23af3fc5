"""The whole multi-visit journey in a real Chromium (issue 10): baseline, the way back, the
+4 h visit on another event list, the +7 days visit missed; the times a participant reads
in their own zone, with a clock hours off and across a daylight-saving change.

Time is moved the way the issue asks: the test changes the stored completion time or the
staff anchor, never the server's clock.
"""

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from icalendar import Calendar
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import TaskRobot
from tests.factories import make_study
from trials.models import Participant, Session, Study, Timepoint

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

SHOTS = Path(os.environ.get("SCREENSHOTS_DIR", "/tmp/shots"))  # noqa: S108
PARIS = ZoneInfo("Europe/Paris")
H = timedelta(hours=1)


def shot(page: Page, name: str) -> None:
    """A whole-page screenshot (viewport stretched to the page, then put back)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    viewport = page.viewport_size
    assert viewport is not None
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(viewport)


def journey_study() -> Study:
    """baseline; h4 opens 4 h after baseline, closes after 12 h; d7 opens 7 days after the
    first visit, closes a day later. One list per visit (Latin square)."""
    study = make_study(
        slug="journey", n_events=2, n_practice=0, arms=("main",), n_timepoints=3, min_br_view_ms=100
    )
    Timepoint.objects.filter(study=study, order=1).update(
        label="h4", opens_after=4 * H, closes_after=12 * H
    )
    Timepoint.objects.filter(study=study, order=2).update(
        label="d7", anchor="first", opens_after=timedelta(days=7), closes_after=timedelta(days=8)
    )
    return study


def day_word(moment: datetime, now: datetime, language: str = "en") -> str:
    days = (moment.astimezone(PARIS).date() - now.astimezone(PARIS).date()).days
    words = {"en": {0: "today", 1: "tomorrow"}, "fr": {0: "aujourd’hui", 1: "demain"}}
    return words[language][days]


def local(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%H:%M")


def long_date(moment: datetime) -> str:
    return moment.astimezone(PARIS).strftime("%A %-d %B")


def context_in_paris(browser: Browser, **extra: Any) -> BrowserContext:
    return browser.new_context(
        locale="en-GB",
        timezone_id="Europe/Paris",
        viewport={"width": 1000, "height": 900},
        **extra,
    )


def test_the_whole_journey_baseline_h4_then_d7_missed(
    browser: Browser, live_server: Any, robot: type[TaskRobot]
) -> None:
    study = journey_study()
    context = context_in_paris(browser, accept_downloads=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))

    # Baseline, through the consent page.
    page.goto(f"{live_server.url}/s/{study.slug}/?sona_id=4711")
    page.locator("#consent").check()
    page.locator("#start").click()
    page.wait_for_url("**/t/*/")
    baseline_bot = robot(page)
    assert baseline_bot.run() == "complete"
    participant = Participant.objects.get()
    baseline = Session.objects.get(timepoint__order=0)
    assert baseline.status == "completed" and baseline.completed_at is not None
    assert {code[0] for code, _ in baseline_bot.seen_steps} == {"A"}

    # The completion page: when the next visit opens, in Paris time; link, calendar, QR.
    done = baseline.completed_at
    opens, closes = done + 4 * H, done + 12 * H
    expect(page.locator("#next-visit")).to_be_visible()
    expected = (
        f"Your next session opens in 4 hours, from {local(opens)} {day_word(opens, done)} "
        f"until {local(closes)} {day_word(closes, done)}."
    )
    expect(page.locator("#next-visit-window")).to_have_text(expected)
    expect(page.locator("#next-visit-zone")).to_have_text(
        "Times are in your time zone (Europe/Paris)."
    )
    return_url = f"{live_server.url}/r/{participant.token}/"
    expect(page.locator("#return-link")).to_have_value(return_url)
    page.locator("#copy-return-link").click()
    expect(page.locator("#copy-return-link")).to_have_text("Copied")
    expect(page.locator(".next-visit-qr svg.qr-code")).to_be_visible()
    with page.expect_download() as download_info:
        page.locator("#next-visit-calendar").click()
    download = download_info.value
    assert download.suggested_filename == "next-session.ics"
    (event,) = Calendar.from_ical(Path(download.path()).read_bytes()).walk("VEVENT")
    assert event.decoded("dtstart") == opens.replace(microsecond=0)
    assert event.decoded("dtend") == closes.replace(microsecond=0)
    assert str(event["url"]) == return_url
    shot(page, "visit-1-complete-next-visit")

    # The return link before the window: it says when, in the same words.
    page.goto(return_url)
    expect(page.locator("h1")).to_have_text("Your next session is not open yet")
    expect(page.locator("#visit-window")).to_have_text(
        f"Your next session opens in 4 hours, from {local(opens)} {day_word(opens, done)} "
        f"until {local(closes)} {day_word(closes, done)}."
    )
    expect(page.locator("#visit-come-back")).to_be_visible()
    shot(page, "visit-2-return-link-not-yet")
    assert Session.objects.count() == 1

    # The stored completion moved 5 hours back: the window is open, the link starts h4.
    Session.objects.filter(pk=baseline.pk).update(completed_at=timezone.now() - 5 * H)
    page.goto(return_url)
    page.wait_for_url("**/t/*/")
    h4 = Session.objects.get(timepoint__order=1)
    assert page.url == f"{live_server.url}/t/{h4.token}/"
    h4_bot = robot(page)
    assert h4_bot.run() == "complete"
    h4.refresh_from_db()
    assert h4.status == "completed"
    # Another event list (the Latin square's next one), and nothing of the first again.
    assert {code[0] for code, _ in h4_bot.seen_steps} == {"B"}
    assert h4.event_list != baseline.event_list

    # Its completion page points at d7: 7 days after the (moved) first visit.
    first_done = Session.objects.get(pk=baseline.pk).completed_at
    assert first_done is not None
    d7_opens, d7_closes = first_done + timedelta(days=7), first_done + timedelta(days=8)
    expect(page.locator("#next-visit-window")).to_have_text(
        f"Your next session opens in 7 days, from {local(d7_opens)} on {long_date(d7_opens)} "
        f"until {local(d7_closes)} on {long_date(d7_closes)}."
    )
    shot(page, "visit-3-h4-complete-next-visit")

    # The +7 days window passed unanswered: the link says it closed, the visit is missed.
    Session.objects.filter(pk=baseline.pk).update(completed_at=timezone.now() - timedelta(days=9))
    response = page.goto(return_url)
    assert response is not None and response.status == 410
    expect(page.locator("h1")).to_have_text("This session has closed")
    expect(page.locator(".visit-page")).to_contain_text("This session counts as missed")
    shot(page, "visit-4-missed")
    visits = page.request.get(f"{live_server.url}/api/v1/participants/{participant.token}").json()
    assert [(v["timepoint"], v["status"]) for v in visits["visits"]] == [
        ("baseline", "done"),
        ("h4", "done"),
        ("d7", "missed"),
    ]
    assert Session.objects.count() == 2
    assert problems == []
    context.close()


def waiting_study(*, opens_after: timedelta, closes_after: timedelta) -> tuple[Study, Participant]:
    """A two-visit study whose second visit is staff-anchored; the first visit done."""
    study = make_study(slug="clinic", n_events=1, n_practice=0, arms=("main",), n_timepoints=2)
    Timepoint.objects.filter(study=study, order=1).update(
        label="h4", anchor="staff", opens_after=opens_after, closes_after=closes_after
    )
    from trials.services.enrolment import study_enrol

    enrolment = study_enrol(study=study, language="fr")
    Session.objects.filter(pk=enrolment.session.pk).update(
        status="completed", completed_at=timezone.now() - H, step_index=4
    )
    Participant.objects.filter(pk=enrolment.participant.pk).update(
        consented_at=timezone.now() - 2 * H
    )
    return study, enrolment.participant


def test_a_participant_whose_clock_is_hours_off_reads_the_servers_window(
    browser: Browser, live_server: Any
) -> None:
    _study, participant = waiting_study(opens_after=4 * H, closes_after=16 * H)
    infusion = timezone.now()
    Participant.objects.filter(pk=participant.pk).update(staff_anchor_at=infusion)
    opens, closes = infusion + 4 * H, infusion + 16 * H
    context = context_in_paris(browser)
    page = context.new_page()
    # The participant's clock is 6 hours fast: by it, the window would already be open.
    page.clock.install(time=datetime.now(UTC) + 6 * H)

    page.goto(f"{live_server.url}/r/{participant.token}/")

    now = timezone.now()
    expect(page.locator("#visit-window")).to_have_text(
        f"Votre prochaine session ouvre dans 4 heures, entre {day_word(opens, now, 'fr')} à "
        f"{local(opens)} et {day_word(closes, now, 'fr')} à {local(closes)}."
    )
    expect(page.locator("#visit-zone")).to_have_text(
        "Les heures sont celles de votre fuseau horaire (Europe/Paris)."
    )
    shot(page, "visit-5-not-yet-fr")
    context.close()


def test_a_window_spanning_a_daylight_saving_change_shows_each_end_in_its_own_offset(
    browser: Browser, live_server: Any
) -> None:
    # Paris moves to summer time at 02:00 on Sunday 28 March 2027: a 4-hour window opening
    # at 01:30 (CET) closes at 06:30 (CEST), four real hours later.
    _study, participant = waiting_study(opens_after=timedelta(0), closes_after=4 * H)
    opens = datetime(2027, 3, 28, 0, 30, tzinfo=UTC)
    Participant.objects.filter(pk=participant.pk).update(staff_anchor_at=opens)
    Participant.objects.filter(pk=participant.pk).update(language="en")
    context = context_in_paris(browser)
    page = context.new_page()

    page.goto(f"{live_server.url}/r/{participant.token}/")

    days = round((opens - timezone.now()) / timedelta(days=1))
    expect(page.locator("#visit-window")).to_have_text(
        f"Your next session opens in {days} days, from 01:30 on Sunday 28 March "
        "until 06:30 on Sunday 28 March."
    )
    assert (opens + 4 * H).astimezone(PARIS).strftime("%H:%M %Z") == "06:30 CEST"
    context.close()


def test_staff_set_the_infusion_time_on_the_participant_page(
    browser: Browser, live_server: Any
) -> None:
    from tests.dashboard.builders import member
    from tests.e2e.test_dashboard_browser import log_in

    study, participant = waiting_study(opens_after=4 * H, closes_after=16 * H)
    member(study, "analyst", username="nurse")
    context = context_in_paris(browser)
    page = log_in(context, live_server.url, "nurse", "pw")

    page.goto(f"{live_server.url}/dashboard/s/{study.slug}/participants/{participant.pk}/")
    expect(page.locator('[data-visit="h4"]')).to_have_attribute("data-status", "waiting_anchor")
    expect(page.locator("#anchor-form input[name='zone']")).to_have_value("Europe/Paris")
    page.locator("#anchor-form input[name='at']").fill("2099-03-28T01:30")
    page.locator("#anchor-form button[type=submit]").click()
    page.wait_for_load_state("load")

    expect(page.locator('[data-visit="h4"]')).to_have_attribute("data-status", "upcoming")
    participant.refresh_from_db()
    assert participant.staff_anchor_at == datetime(2099, 3, 28, 0, 30, tzinfo=UTC)
    page.locator("#return-qr summary").click()
    shot(page, "dashboard-participant-visits")
    page.goto(f"{live_server.url}/dashboard/s/{study.slug}/")
    expect(page.locator("#visits")).to_be_visible()
    shot(page, "dashboard-overview-visits")
    context.close()
