"""One participant, two tabs on the same /t/<token>/ (two pages of one Chromium context: they
share localStorage), in every choreography of the two: each ends with exactly one server row
per step, in step order, with the value given, and both tabs on the same completion.

static/task/queue.js keeps one localStorage key per unsent answer and never writes back a
list it read; any tab sends any tab's answers, in step order; a tab that sees the other give
an answer carries on after it without waiting for the server.
"""

import re
import time
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Error as PlaywrightError, Page, expect

from scoring.models import Score
from tests.e2e.conftest import SCREEN_JS, TaskRobot, value_for
from tests.e2e.test_task_browser import assert_session_stored, enrol, stored, wait_for_rows
from trials.models import Session, Study
from trials.services.responses import steps_of

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

ANSWER_KEY = "belief-web:answer:v2:"  # static/task/queue.js: ANSWER_PREFIX
OLD_QUEUE_KEY = "belief-web:queue:v1:"  # the single list of the earlier queue.js
STATE_CHANGED = "This session was updated in another window."
API = re.compile(r"/api/v1/sessions/")
STEP_KINDS = ("estimate", "rating", "br")

# A tab that does not hear the other tab's changes (the storage events): it stands for a tab
# that has not heard yet, the moment in which the earlier queue.js lost an answer (a
# background tab whose events wait; the time a write takes to reach another tab's copy).
DEAF_JS = "window.addEventListener('storage', (e) => e.stopImmediatePropagation(), true);"


def start(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], n_events: int = 3
) -> tuple[BrowserContext, Page, str, Session, list[tuple[str, str]]]:
    """A study (practice e1 br, block 1 e1 br, block 2 e2), tab 1 enrolled and past the quiz."""
    small_study(n_events=n_events, n_practice=1)
    context = browser.new_context()
    tab1, token = enrol(context, live_server.url, "demo")
    session = Session.objects.get(token=token)
    plan = [(s.code, s.phase) for s in steps_of(session)]
    return context, tab1, token, session, plan


ON_SCREEN_JS = f"""() => [({SCREEN_JS})(),
  document.getElementById('task-stage')?.getAttribute('data-step')]"""


UNSENT_JS = f"""(token) => Object.keys(localStorage)
  .filter((k) => k.startsWith('{ANSWER_KEY}' + token + ':')).length
  + JSON.parse(localStorage.getItem('{OLD_QUEUE_KEY}' + token) || '[]').length"""


def open_tab(context: BrowserContext, live_server: Any, token: str, deaf: bool = False) -> Page:
    page = context.new_page()
    if deaf:
        page.add_init_script(DEAF_JS)
    page.goto(f"{live_server.url}/t/{token}/")
    return page


def follow(bot: TaskRobot, target: tuple[str, str] | None, timeout: float = 20.0) -> str:
    """Wait until the tab shows `target` (None: the completion), clicking through pages.

    Fails if the tab shows a step past the target, or the completion before it.
    """
    plan_after: list[tuple[str, str]] = getattr(bot, "plan_after", [])
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline, f"never showed {target}; shows {bot.step()}"
        try:
            kind, raw = bot.page.evaluate(ON_SCREEN_JS)
        except PlaywrightError:  # a page loading
            kind, raw = None, None
        shown = tuple(raw.split(" ")) if raw else None
        if kind is None and shown == target and target and target[1] == "br":
            return "br"  # its base rate on its way from the server
        if kind is None:
            bot.page.wait_for_timeout(50)
            continue
        if kind == "complete":
            assert target is None, f"completion shown instead of {target}"
            return kind
        if kind in ("page", "quiz"):
            bot.act(kind)
            continue
        if shown == target:
            return kind
        assert shown not in plan_after, f"shows {shown}, past {target}"
        bot.page.wait_for_timeout(50)


def offline(page: Page) -> None:
    """This tab's requests to the API fail as with no network (the other tab's still work)."""
    page.route(API, lambda route: route.abort("internetdisconnected"))


def online(page: Page) -> None:
    page.unroute(API)
    page.evaluate("() => window.dispatchEvent(new Event('online'))")


def answer_keys(page: Page) -> list[dict[str, Any]]:
    """The unsent answers in localStorage (shared by the tabs), in sending order."""
    items: list[dict[str, Any]] = page.evaluate(
        """(prefix) => Object.keys(localStorage).filter((k) => k.startsWith(prefix))
             .map((k) => JSON.parse(localStorage.getItem(k)))
             .sort((a, b) => a.step - b.step || a.at - b.at)""",
        ANSWER_KEY,
    )
    return items


def watch_posts(*pages: Page) -> list[tuple[int, str]]:
    """(status, body) of every answer POST any of the tabs makes."""
    seen: list[tuple[int, str]] = []

    def on_response(response: Any) -> None:
        if response.request.method == "POST" and response.url.endswith("/responses"):
            seen.append((response.status, response.text()))

    for page in pages:
        page.on("response", on_response)
    return seen


def finish(session: Session, *bots: TaskRobot) -> None:
    """Both tabs to the completion: the same code, the session's; rows exactly as given."""
    codes = []
    for i, bot in enumerate(bots):
        bot.plan_after = []  # type: ignore[attr-defined]
        if i == 0:
            assert bot.run() == "complete"  # the first tab answers what is left
        else:
            follow(bot, None)  # the others follow
        codes.append(bot.page.locator("#completion-code").inner_text())
    session.refresh_from_db()
    assert session.status == Session.Status.COMPLETED
    assert codes == [session.completion_code] * len(bots)
    merged: dict[tuple[str, str], int] = {}
    for bot in bots:
        merged.update(bot.typed)
    assert_session_stored(session, SimpleNamespace(typed=merged))  # type: ignore[arg-type]
    for bot in bots:
        assert answer_keys(bot.page) == []
    # Completed once, though each tab may have asked: one score, computed once.
    deadline = time.monotonic() + 15
    while not Score.objects.filter(session=session).exists():
        assert time.monotonic() < deadline, "never scored"
        time.sleep(0.1)
    assert Score.objects.filter(session=session).count() == 1


def test_both_online_alternating(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """Each tab answers every other step; after each answer the other tab shows the next."""
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    bot1 = robot(tab1)
    follow(bot1, plan[0])
    bot2 = robot(open_tab(context, live_server, token))
    follow(bot2, plan[0])
    posts = watch_posts(bot1.page, bot2.page)
    bots = (bot1, bot2)
    for k, step in enumerate(plan):
        active, other = bots[k % 2], bots[(k + 1) % 2]
        active.plan_after = other.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
        active.act(follow(active, step))
        wait_for_rows(session, k + 1)
        if k + 1 < len(plan):
            # Both tabs on the next step, neither on the one just answered.
            follow(other, plan[k + 1])
            follow(active, plan[k + 1])
    finish(session, bot1, bot2)
    # No answer refused, each stored by one 201 (any repeat is a replay: 200, nothing written).
    assert [s for s, _ in posts if s == 201] == [201] * len(plan)
    assert {s for s, _ in posts} <= {200, 201}
    context.close()


def test_both_offline_answering_different_steps_then_online(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """Offline, tab 1 answers a step, tab 2 the next, tab 1 the next; then the network returns."""
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    first = plan.index(next(s for s in plan if s[1] == "e2"))  # block 2: no base rate to fetch
    bot1 = robot(tab1)
    bot1.plan_after = plan[first + 1 :]  # type: ignore[attr-defined]
    bot1.run(stop=lambda kind, step: step == plan[first])
    bot2 = robot(open_tab(context, live_server, token))
    follow(bot2, plan[first])
    context.set_offline(True)
    for k in (first, first + 1, first + 2):
        active, other = (bot1, bot2) if (k - first) % 2 == 0 else (bot2, bot1)
        active.plan_after = other.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
        active.act(follow(active, plan[k]))
        if k + 1 < len(plan):
            follow(other, plan[k + 1])  # from the other tab's answer, without the server
    # Nothing reached the server; the three answers wait in localStorage, in step order.
    assert len(stored(session)) == first
    pending = answer_keys(bot1.page)
    assert [(i["event"], i["phase"], i["step"]) for i in pending] == [
        (*plan[k], k) for k in (first, first + 1, first + 2)
    ]
    assert len({i["tab"] for i in pending}) == 2
    context.set_offline(False)
    wait_for_rows(session, first + 3, timeout=30)
    finish(session, bot1, bot2)
    context.close()


def test_one_tab_offline_the_other_online(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """Tab 1 has no network: the online tab sends its answers, and tab 1 gets the replies
    (the base rate of its E1 included) and carries on offline."""
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    first = plan.index(next(s for s in plan if s[1] == "e1" and not s[0].startswith("PR")))
    bot1 = robot(tab1)
    bot1.plan_after = plan[first + 1 :]  # type: ignore[attr-defined]
    bot1.run(stop=lambda kind, step: step == plan[first])
    bot2 = robot(open_tab(context, live_server, token))
    follow(bot2, plan[first])
    offline(bot1.page)
    # Tab 1 answers E1 and, once tab 2 has sent it, sees its base rate and answers that too.
    for k in (first, first + 1):
        bot1.plan_after = bot2.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
        bot1.act(follow(bot1, plan[k]))
        wait_for_rows(session, k + 1, timeout=20)
        follow(bot2, plan[k + 1])
    # Tab 2 answers the next one itself; tab 1 follows, still offline.
    bot1.plan_after = bot2.plan_after = plan[first + 3 :]  # type: ignore[attr-defined]
    bot2.act(follow(bot2, plan[first + 2]))
    wait_for_rows(session, first + 3)
    follow(bot1, plan[first + 3])
    online(bot1.page)
    finish(session, bot1, bot2)
    context.close()


def test_tab_closed_with_an_unsent_answer_the_other_sends_it(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    k = plan.index(next(s for s in plan if s[1] == "e2"))
    bot1 = robot(tab1)
    bot1.run(stop=lambda kind, step: step == plan[k])
    bot2 = robot(open_tab(context, live_server, token))
    follow(bot2, plan[k])
    offline(bot1.page)
    bot1.act(follow(bot1, plan[k]))
    bot2.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
    follow(bot2, plan[k + 1])
    assert len(stored(session)) == k
    [left] = answer_keys(bot2.page)
    bot1.page.close()  # with its answer unsent
    wait_for_rows(session, k + 1, timeout=15)  # sent by tab 2
    assert stored(session)[k] == (*plan[k], value_for(*plan[k]))
    assert (
        str(session.responses.get(phase=plan[k][1], event__code=plan[k][0]).client_id)
        == (left["client_id"])
    )
    bot2.typed.update(bot1.typed)
    finish(session, bot2)
    context.close()


def test_reload_in_the_middle(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """Tab 1 answers offline and reloads (still offline, then again online); tab 2 reloads
    while tab 1's answer is unsent: each reload sends what is stored and shows the same step."""
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    k = plan.index(next(s for s in plan if s[1] == "e2"))
    bot1 = robot(tab1)
    bot1.run(stop=lambda kind, step: step == plan[k])
    bot2 = robot(open_tab(context, live_server, token))
    follow(bot2, plan[k])
    offline(bot1.page)
    bot1.act(follow(bot1, plan[k]))
    bot1.plan_after = bot2.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
    follow(bot2, plan[k + 1])
    bot2.page.reload()  # sends tab 1's answer (tab 1 is still open: after a short grace)
    follow(bot2, plan[k + 1])
    assert len(stored(session)) == k + 1
    follow(bot1, plan[k + 1])
    bot1.act(follow(bot1, plan[k + 1]))  # offline again
    bot1.plan_after = bot2.plan_after = plan[k + 2 :]  # type: ignore[attr-defined]
    follow(bot2, plan[k + 2])
    bot1.page.reload()  # offline: the page waits for the server; tab 2 sends its answer
    wait_for_rows(session, k + 2, timeout=20)
    expect(bot1.page.locator("#task-status")).to_have_class(re.compile(r"\bis-offline\b"))
    assert answer_keys(bot1.page) == []
    online(bot1.page)
    follow(bot1, plan[k + 2])
    follow(bot2, plan[k + 2])
    finish(session, bot1, bot2)
    context.close()


def test_stale_tab_refused_does_not_erase_the_other_tabs_answer(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """The interleaving that lost an answer with the single shared list of unsent answers.

    Tab 2 has not heard that tab 1 answered step k, and answers it too while offline; tab 1,
    offline as well, answers step k+1. Tab 2's answer is refused (409) when its network
    returns. The earlier queue.js then cleared the shared list, tab 1's answer to k+1 with it
    (tab 1 reloaded its state and asked k+1 again). Now only the refused answer goes: tab 1's
    is stored once, and both tabs carry on from k+2.
    """
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    k = plan.index(next(s for s in plan if s[1] == "e2"))
    bot1 = robot(tab1)
    bot1.run(stop=lambda kind, step: step == plan[k])
    bot2 = robot(open_tab(context, live_server, token, deaf=True))
    follow(bot2, plan[k])
    posts = watch_posts(bot1.page, bot2.page)

    bot1.act(follow(bot1, plan[k]))  # online: stored
    wait_for_rows(session, k + 1)
    follow(bot1, plan[k + 1])
    assert bot2.step() == plan[k]  # tab 2 has not heard

    offline(bot2.page)
    bot2._mark()
    field = bot2.page.locator("#belief-estimate-input")
    field.fill(str(value_for(*plan[k]) + 1))
    field.press("Enter")
    offline(bot1.page)
    bot1.act(follow(bot1, plan[k + 1]))
    # Both unsent (in either format: this check also runs against the earlier queue.js).
    assert bot1.page.evaluate(UNSENT_JS, token) == 2

    online(bot2.page)  # tab 2's answer is refused
    expect(bot2.page.locator("#task-stage")).to_contain_text(STATE_CHANGED, timeout=15_000)
    wait_for_rows(session, k + 2, timeout=20)  # tab 1's answer, sent by tab 2
    assert stored(session)[k:] == [
        (*plan[k], value_for(*plan[k])),
        (*plan[k + 1], value_for(*plan[k + 1])),
    ]
    bot1.plan_after = bot2.plan_after = plan[k + 2 :]  # type: ignore[attr-defined]
    follow(bot2, plan[k + 2])
    follow(bot1, plan[k + 2])  # tab 1, still offline, got the reply: it never asks k+1 again
    online(bot1.page)
    refused = [(s, b) for s, b in posts if s >= 400]
    assert [s for s, _ in refused] == [409] and '"already_answered"' in refused[0][1]
    bot2.page.close()
    bot3 = robot(open_tab(context, live_server, token))  # one that hears
    finish(session, bot1, bot3)
    context.close()


def test_queue_of_the_previous_format_is_sent_on_load(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    """An unsent answer in the earlier single-list format (a page open when we deploy)."""
    context, tab1, token, session, plan = start(browser, live_server, small_study)
    k = plan.index(next(s for s in plan if s[1] == "e2"))
    bot1 = robot(tab1)
    bot1.run(stop=lambda kind, step: step == plan[k])
    client_id = str(uuid.uuid4())
    old = [
        {
            "client_id": client_id,
            "event": plan[k][0],
            "phase": plan[k][1],
            "value": value_for(*plan[k]),
            "rt_ms": 1234,
            "onset_at": None,
        }
    ]
    tab1.evaluate(
        "([key, list]) => localStorage.setItem(key, JSON.stringify(list))",
        [OLD_QUEUE_KEY + token, old],
    )
    tab1.reload()
    bot1.plan_after = plan[k + 1 :]  # type: ignore[attr-defined]
    follow(bot1, plan[k + 1])
    assert stored(session)[k] == (*plan[k], value_for(*plan[k]))
    row = session.responses.get(phase=plan[k][1], event__code=plan[k][0])
    assert (str(row.client_id), row.rt_ms) == (client_id, 1234)
    assert tab1.evaluate("(key) => localStorage.getItem(key)", OLD_QUEUE_KEY + token) is None
    bot1.typed[plan[k]] = value_for(*plan[k])
    finish(session, bot1)
    context.close()
