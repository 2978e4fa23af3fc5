"""The web process killed and started again while a participant keeps answering in Chromium.

The web server (common.serve, 2 workers) serves the real task page from the test database. In
block 2 it is killed with SIGKILL (server and workers at once); the participant answers two
more screens, which wait in the browser's queue; the web server starts again on the same
port; the queue sends the backlog by itself and the session ends with every row once.
"""

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.e2e.conftest import TaskRobot
from tests.e2e.test_task_browser import assert_completed, assert_session_stored, enrol, stored
from tests.faults.processes import WebServer
from trials.models import Session, Study
from trials.services.responses import steps_of

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

OFFLINE_LINE = "Offline: your answers are kept and will be sent when the connection returns."


def database_url_of_tests() -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    return f"postgres://{db.get('USER') or 'postgres'}{password}@{host}:{port}/{db['NAME']}"


@pytest.fixture
def web(
    transactional_db: None, postgres: None, fault_redis: str, tmp_path: Path
) -> Iterator[WebServer]:
    """The web server on the test database; stopped before the database is flushed."""
    server = WebServer(database_url_of_tests(), tmp_path, fault_redis)
    try:
        yield server
    finally:
        server.stop()


def serve_static_from_finders(context: BrowserContext, base_url: str) -> None:
    """/static/ straight from the source folders: a server without collectstatic has none."""

    def fulfil(route: Route) -> None:
        found = finders.find(urlparse(route.request.url).path.removeprefix("/static/"))
        if isinstance(found, str):
            route.fulfill(path=found)
        else:
            route.fulfill(status=404, body="")

    context.route(f"{base_url}/static/**", fulfil)


def wait_rows(page: Page, session: Session, count: int, timeout: float) -> float:
    """Wait for the server to hold `count` rows; waits through Playwright so routes run."""
    started = time.monotonic()
    while len(stored(session)) < count:
        assert time.monotonic() - started < timeout, f"only {len(stored(session))}/{count} rows"
        page.wait_for_timeout(50)
    return time.monotonic() - started


def test_web_restart_mid_session_keeps_every_answer(
    browser: Browser,
    web: WebServer,
    small_study: Callable[..., Study],
    robot: type[TaskRobot],
) -> None:
    small_study(n_events=4)
    web.start()
    context = browser.new_context()
    serve_static_from_finders(context, web.url)
    page, token = enrol(context, web.url, "demo")
    session = Session.objects.get(token=token)
    bot: Any = robot(page)
    block2 = [code for _, code in session.plan["order2"]]
    plan = [(s.code, s.phase) for s in steps_of(session)]

    bot.run(stop=lambda kind, step: step == (block2[1], "e2"))
    before = plan.index((block2[1], "e2"))
    wait_rows(page, session, before, timeout=15)
    # The row is committed before its reply reaches the page: wait until the queue has taken
    # that reply (it empties its list then), so that no answer from before the kill is
    # counted as one given while the server was down.
    page.wait_for_function(
        "() => !Object.keys(localStorage).some(k => k.startsWith('belief-web:queue:v1:'))",
        timeout=15_000,
    )

    failed_posts: list[str] = []
    answered_while_down: list[int] = []
    down = [True]
    page.on("requestfailed", lambda r: failed_posts.append(r.url) if r.method == "POST" else None)
    page.on(
        "response",
        lambda r: (
            answered_while_down.append(r.status) if down[0] and r.request.method == "POST" else None
        ),
    )
    web.kill()  # SIGKILL to master and workers
    killed_at = time.monotonic()
    bot.act(bot.screen())
    bot.act(bot.screen())
    assert bot.step() == (block2[3], "e2")
    deadline = time.monotonic() + 15
    while not failed_posts:
        assert time.monotonic() < deadline, "the queue never tried to send"
        page.wait_for_timeout(50)
    # Nothing answers on the port while the web server is down: every try is a network error.
    assert answered_while_down == []
    expect(page.locator("#task-status")).to_have_text(OFFLINE_LINE, timeout=15_000)
    assert len(stored(session)) == before  # the two answers wait in the browser
    page.wait_for_timeout(1000)
    down[0] = False
    boot_s = web.start()
    down_s = time.monotonic() - killed_at
    # The queue retries on its own backoff (at most 10 s apart): no reload, no click.
    caught_up_s = wait_rows(page, session, before + 2, timeout=30)
    retries = len(failed_posts)
    expect(page.locator("#task-status")).not_to_have_text(OFFLINE_LINE, timeout=15_000)

    # "Maybe sent": the server stores the next answer but its reply is lost on the way back
    # (as when the process dies right after the commit). The queue sends it again under the
    # same client_id and the server answers 200 with the stored row, writing nothing.
    lost: list[str] = []

    def lose_the_reply(route: Route) -> None:
        if route.request.method == "POST" and not lost:
            reply = route.fetch()
            lost.append(f"{reply.status} {route.request.post_data}")
            route.abort("connectionreset")
        else:
            route.continue_()

    context.route(re.compile(r"/api/v1/sessions/[^/]+/responses$"), lose_the_reply)
    bot.act(bot.screen())
    wait_rows(page, session, before + 3, timeout=15)
    # The row is committed while the handler still waits in route.fetch(): it records the
    # reply only when Playwright next runs it.
    deadline = time.monotonic() + 15
    while not lost:
        assert time.monotonic() < deadline, "the reply was never intercepted"
        page.wait_for_timeout(50)
    assert lost[0].startswith("201 ")
    page.wait_for_function("() => !document.querySelector('#task-status.is-offline')")

    assert bot.run() == "complete"
    assert_completed(page, session)
    assert_session_stored(session, bot)
    session.refresh_from_db()
    assert session.completed_at is not None
    print(
        f"\n[web restart] web server down {down_s:.1f} s (start-up {boot_s:.1f} s); "
        f"{retries} failed POSTs meanwhile, retried by the queue; "
        f"the backlog stored {caught_up_s:.1f} s after the web server answered again; "
        f"{len(stored(session))} rows, one per step"
    )
    context.close()
