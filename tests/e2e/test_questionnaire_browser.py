"""Questionnaires inside the session, in a real Chromium against the real server: a phone in
French, demographics before the task and PHQ-9 after it, refusals on screen, the keyboard,
the network cut and the page reloaded in the middle of the questionnaire, and at the end
exactly one stored answer per item with the value given."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.utils import translation
from playwright.sync_api import Browser, Page, expect

from instruments.models import ItemAnswer
from instruments.services import instrument_attach, instruments_load_shipped
from tests.e2e.conftest import TaskRobot
from tests.e2e.test_task_browser import DESKTOP, PHONE, assert_completed, enrol, stored
from trials.models import Session, Study
from trials.services.responses import steps_of
from trials.ui_strings import task_strings

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

PHQ9 = [f"phq9_{i}" for i in range(1, 10)]


def attach(study: Study) -> None:
    shipped = {i.code: i for i in instruments_load_shipped()}
    timepoint = study.timepoints.get()
    instrument_attach(
        study=study, timepoint=timepoint, instrument=shipped["demographics"], position="before"
    )
    instrument_attach(study=study, timepoint=timepoint, instrument=shipped["phq9"])


def item_rows(session: Session) -> list[tuple[str, str, int | None]]:
    return list(
        ItemAnswer.objects.filter(session=session)
        .order_by("id")
        .values_list("instrument__code", "item", "value")
    )


def wait_for_items(session: Session, count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while len(item_rows(session)) < count:
        assert time.monotonic() < deadline, f"the server never got {count} item answers"
        time.sleep(0.05)
    assert len(item_rows(session)) == count


def assert_everything_stored_once(session: Session, bot: TaskRobot) -> None:
    """One row per step of the plan, in plan order, each holding the value the robot gave."""
    session.refresh_from_db()
    steps = steps_of(session)
    items = [(s.instrument, s.item) for s in steps if s.is_item]
    rows = item_rows(session)
    assert [(i, code) for i, code, _ in rows] == items
    for _instrument, code, value in rows:
        assert value == bot.typed[(code, "item")], code
    task = [(s.code, s.phase) for s in steps if not s.is_item]
    assert [(e, p) for e, p, _ in stored(session)] == task


def test_phone_in_french_questionnaires_offline_and_reload_lose_nothing(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    study = small_study(n_events=2, n_practice=1, languages=["en", "fr"])
    attach(study)
    with translation.override("fr"):
        french = task_strings()
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="fr-FR")
    page, token = enrol(context, live_server.url, "demo", lang="fr")
    session = Session.objects.get(token=token)
    bot = robot(page, touch=True)

    # The questionnaire before the task opens the session, in French.
    assert bot.screen() == "page"
    expect(page.locator("#task-stage h1")).to_have_text(french["questionnaire_heading"])
    bot.act("page")
    assert bot.screen() == "item" and bot.step() == ("age", "item")
    expect(page.locator(".belief-item-text")).to_have_text("Quel âge avez-vous (en années) ?")
    expect(page.locator(".belief-item-unit")).to_have_text("ans")
    expect(page.locator(".belief-item-counter")).to_have_text("Question 1 sur 3")
    expect(page.locator("#belief-item-hint")).to_have_text("Un nombre entier de 16 à 110.")
    field = page.locator("#belief-item-input")
    expect(field).to_have_attribute("inputmode", "numeric")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    # Out of range: said on screen, nothing sent.
    field.fill("12")
    field.press("Enter")
    expect(page.locator("#belief-item-error")).to_have_text(
        "Veuillez saisir un nombre entier de 16 à 110."
    )
    expect(field).to_have_attribute("aria-invalid", "true")
    assert item_rows(session) == []
    bot.act("item")
    wait_for_items(session, 1)

    # A choice: Continue without one is refused; then the keyboard alone answers.
    assert bot.screen() == "item" and bot.step() == ("sex", "item")
    expect(page.locator(".belief-item label")).to_have_text(
        ["Femme", "Homme", "Autre", "Je préfère ne pas répondre"]
    )
    size = page.locator(".belief-item .belief-option label").first.bounding_box()
    assert size is not None and size["height"] >= 44
    page.locator(".belief-item .belief-btn-primary").tap()
    expect(page.locator("#belief-item-error")).to_have_text("Veuillez choisir une réponse.")
    expect(page.locator(".belief-item input[type=radio]").first).to_be_focused()
    page.keyboard.press("ArrowDown")  # moves to and checks "Homme"
    expect(page.locator(".belief-item input[type=radio]").nth(1)).to_be_checked()
    bot._mark()
    page.keyboard.press("Enter")
    bot.typed[("sex", "item")] = 2
    bot.seen_steps.append(("sex", "item"))
    wait_for_items(session, 2)
    assert bot.screen() == "item" and bot.step() == ("education_years", "item")
    bot.act("item")

    # Then the task's instructions and quiz (after the questionnaire, not before it).
    assert bot.screen() == "page"
    expect(page.locator("#task-stage h1")).to_have_text(french["instructions_heading_1"])
    bot.run(
        stop=lambda kind, step: (
            kind == "page" and step is None and _heading(page) == french["questionnaire_heading"]
        )
    )
    bot.act("page")

    # PHQ-9 after the task: English only (no validated French is shipped), marked as such.
    assert bot.screen() == "item" and bot.step() == ("phq9_1", "item")
    expect(page.locator(".belief-item-text")).to_have_attribute("lang", "en")
    expect(page.locator(".belief-item-text")).to_have_text(
        "Little interest or pleasure in doing things"
    )
    expect(page.locator(".belief-item-counter")).to_have_text("Question 1 sur 9")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    for _ in range(3):
        bot.act(bot.screen())
    wait_for_items(session, 3 + 3)

    # The network goes; two more answers are kept on the phone, none reaches the server.
    context.set_offline(True)
    bot.act(bot.screen())
    bot.act(bot.screen())
    assert bot.screen() == "item" and bot.step() == ("phq9_6", "item")
    expect(page.locator("#task-status")).to_have_text(french["offline"])
    time.sleep(0.5)
    assert len(item_rows(session)) == 6
    # Reloaded while offline: the browser's error page; the answers stay in the phone.
    with pytest.raises(Exception, match="ERR_INTERNET_DISCONNECTED"):
        page.reload()
    context.set_offline(False)
    page.goto(f"{live_server.url}/t/{token}/")
    # Back: the kept answers are sent first, and the session resumes at the exact item.
    expect(page.locator("#task-stage h1")).to_have_text(french["welcome_back_heading"])
    wait_for_items(session, 8)
    bot.act(bot.screen())
    assert bot.screen() == "item" and bot.step() == ("phq9_6", "item")

    # Another device opens the same session link: the same item is next there too.
    other = browser.new_context(viewport=DESKTOP, locale="fr-FR")
    there = other.new_page()
    there.goto(f"{live_server.url}/t/{token}/")
    expect(there.locator("#task-stage h1")).to_have_text(french["welcome_back_heading"])
    there.locator(".belief-page .belief-btn-primary").click()
    expect(there.locator("#task-stage")).to_have_attribute("data-step", "phq9_6 item")
    other.close()

    try:
        assert bot.run() == "complete"
    except Exception:
        print("STAGE", page.locator("#task-stage").inner_html()[:3000])
        print("STEP", bot.seen_steps[-5:])
        raise
    assert_completed(page, session)
    assert_everything_stored_once(session, bot)
    assert [code for _, code, _ in item_rows(session)][3:] == PHQ9
    context.close()


def _heading(page: Page) -> str:
    heading = page.locator("#task-stage h1")
    return heading.first.inner_text() if heading.count() else ""


def test_the_preview_runs_the_demo_s_questionnaires_and_sends_nothing(
    browser: Browser, live_server: Any, robot: type[TaskRobot]
) -> None:
    from tests.e2e.test_dashboard_browser import log_in, watch
    from trials.services.demo import demo_study_load

    study, _owner, password = demo_study_load(password="demo-password-1")
    context = browser.new_context(viewport=DESKTOP)
    page = log_in(context, live_server.url, "demo", password)
    problems = watch(page)
    sent: list[str] = []

    def on_request(request: Any) -> None:
        if request.is_navigation_request() or "/static/" in request.url:
            return
        if not request.url.endswith("/favicon.svg"):
            sent.append(request.url)

    page.on("request", on_request)
    page.goto(f"{live_server.url}/dashboard/s/demo/preview/?lang=en&timepoint=0")
    bot = robot(page)
    assert bot.screen() == "page"
    expect(page.locator("#task-stage h1")).to_have_text("A few questions")
    bot.act("page")
    for code in ("age", "sex", "education_years"):
        assert bot.screen() == "item" and bot.step() == (code, "item")
        bot.act("item")
    # Then the task's instructions, as in a session.
    assert bot.screen() == "page"
    expect(page.locator("#task-stage h1")).to_have_text(task_strings()["instructions_heading_1"])
    rows = page.locator("#preview-log tr")
    expect(rows).to_have_count(3)
    assert rows.locator("td:nth-child(1)").all_inner_texts() == [
        "demographics age",
        "demographics sex",
        "demographics education_years",
    ]
    assert rows.locator("td:nth-child(3)").all_inner_texts() == [
        str(bot.typed[(c, "item")]) for c in ("age", "sex", "education_years")
    ]
    assert sent == [] and problems == []
    assert not ItemAnswer.objects.exists()
    assert not Session.objects.filter(participant__study=study).exists()
    context.close()
