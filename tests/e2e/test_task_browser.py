"""The participant task in a real Chromium, against the real server and PostgreSQL.

Each test enrols through the consent page, answers the task like a participant,
and then checks the database: one Response per (event, phase) of the session's
plan, holding the values typed, and the completion code shown on screen.
"""

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import translation
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.e2e.conftest import TaskRobot
from trials.models import Response, Session, Study, Trial
from trials.services.responses import steps_of
from trials.ui_strings import task_strings

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 360, "height": 740}


def enrol(context: BrowserContext, base_url: str, slug: str, lang: str = "en") -> tuple[Page, str]:
    """Open the study link, give consent, land on the task; return the page and session token."""
    page = context.new_page()
    page.goto(f"{base_url}/s/{slug}/?lang={lang}&PROLIFIC_PID=robot{id(page)}")
    page.locator("#consent").check()
    page.locator("#start").click()
    page.wait_for_url("**/t/*/")
    token = page.url.rstrip("/").rsplit("/", 1)[-1]
    return page, token


def stored(session: Session) -> list[tuple[str, str, int]]:
    return list(
        Response.objects.filter(session=session)
        .order_by("id")
        .values_list("event__code", "phase", "value")
    )


def wait_for_rows(session: Session, count: int, timeout: float = 10.0) -> None:
    """Wait until the server holds `count` answers of the session (the queue runs behind)."""
    deadline = time.monotonic() + timeout
    while len(stored(session)) < count:
        assert time.monotonic() < deadline, f"the server never got {count} answers"
        time.sleep(0.05)
    assert len(stored(session)) == count


def assert_session_stored(session: Session, robot: TaskRobot) -> None:
    """Exactly one row per planned step, in plan order, with the values the robot gave."""
    session.refresh_from_db()
    plan = [(s.code, s.phase) for s in steps_of(session)]
    rows = stored(session)
    assert [(e, p) for e, p, _ in rows] == plan
    base_rates = dict(Trial.objects.filter(session=session).values_list("event__code", "br"))
    for event, phase, value in rows:
        if phase == "br":
            assert value == base_rates[event], (event, phase)
        else:
            assert value == robot.typed[(event, phase)], (event, phase)


def assert_completed(page: Page, session: Session) -> None:
    code = page.locator("#completion-code")
    expect(code).to_be_visible()
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED
    assert code.inner_text() == session.completion_code != ""


def test_whole_session_in_english_with_every_optional_part(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(
        n_events=2,
        collect_ebr=True,
        collect_confidence=True,
        memory_test=True,
        ratings=True,
        show_debrief=True,
    )
    context = browser.new_context(viewport=DESKTOP)
    page, token = enrol(context, live_server.url, "demo", "en")
    session = Session.objects.get(token=token)
    bot = robot(page)

    # Stop at the first estimate of block 1 to try refused values.
    bot.run(stop=lambda kind, step: kind == "estimate" and step is not None and step[0][0] == "A")
    first = bot.step()
    assert first is not None and first[1] == "e1"
    rows_before = len(stored(session))
    field = page.locator("#belief-estimate-input")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("inputmode", "numeric")
    error = page.locator("#belief-estimate-error")
    message = "Please enter a whole number between 3 and 77."
    for bad in ("90", "2", "abc", "12.5", ""):
        field.fill(bad)
        field.press("Enter")
        expect(error).to_have_text(message)
        expect(field).to_have_attribute("aria-invalid", "true")
        assert bot.step() == first
    page.wait_for_timeout(300)
    assert len(stored(session)) == rows_before

    bot.run()
    assert_completed(page, session)
    assert_session_stored(session, bot)
    phases = {p for _, p in bot.seen_steps}
    assert phases == {
        "e1",
        "ebr1",
        "br",
        "confidence",
        "e2",
        "ebr2",
        "memory",
        "vividness",
        "familiarity",
        "experience",
        "arousal",
        "negativity",
    }
    assert "About this study" in bot.pages_seen
    context.close()


def test_whole_session_in_french(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study()
    with translation.override("fr"):
        french = task_strings()
    context = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    page, token = enrol(context, live_server.url, "demo", "fr")
    session = Session.objects.get(token=token)
    assert session.language == "fr"
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    bot = robot(page)

    bot.run(stop=lambda kind, step: kind == "estimate")
    expect(page.locator("label[for=belief-estimate-input]")).to_have_text(french["prompt_e"])
    expect(page.locator(".belief-event-text")).to_have_text("Essai 1")
    bot.run()
    assert_completed(page, session)
    assert_session_stored(session, bot)
    expect(page.locator(".task-message h1")).to_have_text(french["completion_heading"])
    context.close()


def test_reload_in_block_1_resumes_at_the_next_step(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(n_events=4)
    context = browser.new_context(viewport=DESKTOP)
    page, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    bot = robot(page)

    block1 = [code for _, code in session.plan["order1"]]
    third = block1[2]
    bot.run(stop=lambda kind, step: step == (third, "e1"))
    page.reload()
    # A resumed session skips the instructions and says so.
    expect(page.locator("#task-stage h1")).to_have_text("Welcome back")
    session.refresh_from_db()
    expected_next = steps_of(session)[session.step_index]
    assert (expected_next.code, expected_next.phase) == (third, "e1")
    bot.run(stop=lambda kind, step: kind != "page")
    assert bot.step() == (third, "e1")

    bot.run()
    assert_completed(page, session)
    assert_session_stored(session, bot)
    block1_seen = [s for s in bot.seen_steps if s[1] == "e1" and s[0] in block1]
    assert block1_seen == [(code, "e1") for code in block1]
    context.close()


def test_network_cut_in_block_2_keeps_every_answer(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(n_events=4)
    context = browser.new_context(viewport=DESKTOP)
    page, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    bot = robot(page)
    block2 = [code for _, code in session.plan["order2"]]
    status = page.locator("#task-status")
    offline_line = "Offline: your answers are kept and will be sent when the connection returns."

    # Answer the first E2 online, then cut the network for the next two.
    bot.run(stop=lambda kind, step: step == (block2[1], "e2"))
    plan = [(s.code, s.phase) for s in steps_of(session)]
    rows_online = plan.index((block2[1], "e2"))
    wait_for_rows(session, rows_online)
    context.set_offline(True)
    bot.act(bot.screen())
    bot.act(bot.screen())
    assert bot.screen() == "estimate" and bot.step() == (block2[3], "e2")
    expect(status).to_have_text(offline_line)
    assert len(stored(session)) == rows_online  # nothing reached the server meanwhile
    context.set_offline(False)
    expect(status).not_to_have_text(offline_line, timeout=15_000)
    page.wait_for_function("() => !document.querySelector('#task-status.is-offline')")

    # Cut it again for the last answer: no completion code until the server has it all.
    context.set_offline(True)
    bot.act(bot.screen())
    expect(page.locator(".belief-waiting")).to_have_text("Saving your answers…")
    page.wait_for_timeout(1500)
    expect(page.locator("#completion-code")).to_have_count(0)
    session.refresh_from_db()
    assert session.status != Session.Status.COMPLETED
    context.set_offline(False)

    assert bot.run() == "complete"
    assert_completed(page, session)
    assert_session_stored(session, bot)
    context.close()


def test_phone_completes_the_session_by_touch(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(collect_confidence=True)
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    bot = robot(page, touch=True)

    bot.run(stop=lambda kind, step: kind == "estimate")
    field = page.locator("#belief-estimate-input")
    expect(field).to_have_attribute("inputmode", "numeric")
    expect(field).to_have_attribute("pattern", "[0-9]*")
    # Nothing is wider than the phone's screen.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    bot.run(stop=lambda kind, step: kind == "rating")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    size = page.locator(".belief-scale-btn").first.bounding_box()
    assert size is not None and size["width"] >= 44 and size["height"] >= 44

    bot.run()
    assert_completed(page, session)
    assert_session_stored(session, bot)
    context.close()
