"""One participant, two tabs on the same /t/<token>/: one row per step, completion once.

Both tabs show the same step. Tab 1 answers it; tab 2 answers it too (another value): the
server refuses the second (409), tab 2's queue drops it, reads the state again and carries
on from the next step to the end. Tab 1, still on its old screen, then answers a step that is
long done: refused, it reloads the state and shows the same completion code.
"""

import re
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from scoring.models import Score
from tests.e2e.conftest import TaskRobot, value_for
from tests.e2e.test_task_browser import assert_session_stored, enrol, stored
from trials.models import Session, Study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

STATE_CHANGED = "This session was updated in another window."
QUEUE_KEY = "belief-web:queue:v1:"  # static/task/queue.js: STORAGE_PREFIX


def test_same_step_from_two_tabs(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(n_events=3)
    context = browser.new_context()
    tab1, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    bot1 = robot(tab1)
    first = session.plan["order1"][0][1]
    bot1.run(stop=lambda kind, step: step == (first, "e1"))
    rows_before = len(stored(session))

    # Tab 2 opens the same link: it resumes at the same step.
    tab2 = context.new_page()
    refusals: list[tuple[int, str]] = []
    tab2.on(
        "response",
        lambda r: refusals.append((r.status, r.text())) if r.status == 409 else None,
    )
    tab2.goto(f"{live_server.url}/t/{token}/")
    bot2 = robot(tab2)
    bot2.run(stop=lambda kind, step: step == (first, "e1"))

    bot1.act(bot1.screen())  # tab 1 answers the step
    deadline = time.monotonic() + 10
    while len(stored(session)) < rows_before + 1:
        assert time.monotonic() < deadline
        tab1.wait_for_timeout(50)
    # ... and its queue has taken the server's reply (the shared list of unsent answers is
    # empty). Otherwise tab 2's answer can join the list while tab 1 still holds its own
    # there, and which tab's queue sends which answer becomes a race this test is not about.
    tab1.wait_for_function(f"() => localStorage.getItem({QUEUE_KEY + token!r}) === null")

    # Tab 2 answers the same step with another value.
    other = value_for(first, "e1") + 1
    bot2._mark()
    field = tab2.locator("#belief-estimate-input")
    field.fill(str(other))
    field.press("Enter")
    expect(tab2.locator("#task-stage")).to_contain_text(STATE_CHANGED, timeout=10_000)
    assert bot2.run() == "complete"
    code2 = tab2.locator("#completion-code").inner_text()

    # Tab 1 is still on the base-rate screen of that step: its answer is refused as well, and
    # it shows the completion the other tab reached.
    assert bot1.screen() == "br"
    bot1.act("br")
    expect(tab1.locator("#completion-code")).to_have_text(code2, timeout=15_000)

    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED and session.completion_code == code2
    assert [s for s, _ in refusals] == [409]
    assert '"already_answered"' in refusals[0][1]
    merged = SimpleNamespace(typed={**bot1.typed, **bot2.typed})
    assert merged.typed[(first, "e1")] == value_for(first, "e1") != other
    assert_session_stored(session, merged)  # type: ignore[arg-type]
    # Completed once: one score queued and computed for the session.
    deadline = time.monotonic() + 15
    while not Score.objects.filter(session=session).exists():
        assert time.monotonic() < deadline, "never scored"
        time.sleep(0.1)
    assert Score.objects.filter(session=session).count() == 1
    context.close()


def test_answer_sent_by_the_other_tab_still_releases_this_tab(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(n_events=3)
    context = browser.new_context()
    tab1, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    first = session.plan["order1"][0][1]
    bot1 = robot(tab1)
    bot1.run(stop=lambda kind, step: step == (first, "e1"))
    tab2 = context.new_page()
    tab2.goto(f"{live_server.url}/t/{token}/")
    bot2 = robot(tab2)
    bot2.run(stop=lambda kind, step: step == (first, "e1"))
    rows = len(stored(session))

    # Tab 1 answers while its own POSTs fail: the answer waits in the shared list.
    cut = re.compile(r"/api/v1/sessions/[^/]+/responses$")
    tab1.route(cut, lambda route: route.abort("connectionreset"))
    bot1.act(bot1.screen())
    tab1.wait_for_timeout(300)
    assert len(stored(session)) == rows
    # Tab 2 answers the same step: its queue sends tab 1's answer first (201), then its own
    # (409, dropped); tab 2 reloads the state and carries on.
    bot2._mark()
    tab2.locator("#belief-estimate-input").fill(str(value_for(first, "e1") + 1))
    tab2.locator("#belief-estimate-input").press("Enter")
    expect(tab2.locator("#task-stage")).to_contain_text(STATE_CHANGED, timeout=10_000)
    assert stored(session)[rows][2] == value_for(first, "e1")  # tab 1's value, stored once
    tab1.unroute(cut)

    # Tab 1, when the participant goes back to it, leaves its "saving" screen and shows the
    # base rate that tab 2's queue received for it.
    tab1.bring_to_front()
    expect(tab1.locator(".belief-base-rate .belief-btn-primary")).to_be_enabled(timeout=15_000)
    context.close()
