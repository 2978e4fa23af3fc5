"""What a new lab's participants hit on first use (issue 16), in a real Chromium.

Offline at a base rate, the comprehension quiz's order, the E1 and eBR screens, the focus
ring. Screenshots go to $SCREENSHOTS_DIR (default /tmp/shots), from where docs/screenshots/
takes them.
"""

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.utils import translation
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.e2e.conftest import TaskRobot
from tests.e2e.test_task_browser import assert_completed, assert_session_stored, enrol, stored
from trials.models import Session, Study
from trials.services.responses import steps_of
from trials.ui_strings import task_strings

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 360, "height": 740}
SHOTS = Path(os.environ.get("SCREENSHOTS_DIR", "/tmp/shots"))  # noqa: S108


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(
    ("language", "viewport", "name"),
    [("en", DESKTOP, "D-09b-br-offline"), ("fr", PHONE, "m-09b-br-offline-fr")],
)
def test_offline_at_a_base_rate_says_what_it_waits_for_and_goes_on_by_itself(
    browser: Browser,
    live_server: Any,
    small_study: Callable[..., Study],
    robot: type[TaskRobot],
    language: str,
    viewport: ViewportSize,
    name: str,
) -> None:
    small_study(n_events=3)
    with translation.override(language):
        strings = task_strings()
    context = browser.new_context(viewport=viewport, locale=f"{language}-FR")
    page, token = enrol(context, live_server.url, "demo", language)
    session = Session.objects.get(token=token)
    bot = robot(page)
    first = session.plan["order1"][0][1]

    # The instructions promise only what holds: no carrying on past a first estimate offline.
    assert "except after a first estimate" in task_strings()["instructions_3_c"]
    bot.run(stop=lambda kind, step: step == (first, "e1"))
    rows = len(stored(session))
    context.set_offline(True)
    bot.act("estimate")
    waiting = page.locator(".belief-base-rate .belief-waiting-box.is-offline")
    expect(waiting.locator("h2")).to_have_text(strings["br_offline_title"])
    expect(waiting.locator("p")).to_have_text(
        [strings["br_offline_why"], strings["br_offline_safe"], strings["br_offline_resume"]]
    )
    expect(waiting).to_have_attribute("role", "status")
    expect(page.locator("#task-status")).to_have_text(strings["offline"])
    # Nothing to press: no Continue, no base rate, until the server has the answer.
    expect(page.locator(".belief-base-rate button")).to_have_count(0)
    shot(page, name)
    page.wait_for_timeout(1000)
    expect(page.locator(".belief-br-value")).to_have_count(0)
    assert len(stored(session)) == rows

    context.set_offline(False)
    back = time.monotonic()
    # It goes on by itself: the E1 is sent and the base rate appears, no click needed.
    expect(page.locator(".belief-br-value")).to_be_visible(timeout=5_000)
    assert time.monotonic() - back < 5
    expect(page.locator(".belief-waiting-box")).to_have_count(0)
    expect(page.locator("#task-status")).not_to_have_text(strings["offline"])
    assert stored(session)[-1][:2] == (first, "e1")
    br = page.locator(".belief-br-value").inner_text()
    assert br.rstrip("%\u00a0\u202f ") == str(session.trials.get(event__code=first).br)

    assert bot.run() == "complete"
    assert_completed(page, session)
    assert_session_stored(session, bot)
    assert len(stored(session)) == len(steps_of(session))
    context.close()
