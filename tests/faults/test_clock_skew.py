"""A participant whose clock is hours off: answers accepted, received_at is the server's time,
onset_at is stored exactly as sent, and the order of the rows is the order of the steps."""

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import Browser, Request

from tests.e2e.conftest import TaskRobot, value_for
from tests.e2e.test_task_browser import assert_completed, assert_session_stored, enrol
from tests.factories import make_study
from trials.models import Response, Session, Study
from trials.services.enrolment import study_enrol
from trials.services.responses import steps_of

SKEW_HOURS = 5
# Date, but SKEW_HOURS ahead: `new Date()`, `Date.now()`; performance.now() is untouched.
SKEWED_DATE = """(() => {
  const Real = Date;
  const skew = %d * 3600 * 1000;
  class Skewed extends Real {
    constructor(...args) { if (args.length === 0) super(Real.now() + skew); else super(...args); }
    static now() { return Real.now() + skew; }
  }
  globalThis.Date = Skewed;
})();"""


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.mark.django_db
def test_onset_at_hours_or_years_off_is_accepted_and_kept(postgres: None) -> None:
    study = make_study(slug="skew", n_events=2, arms=("main",), n_timepoints=1)
    session = study_enrol(study=study).session
    client = Client()
    now = timezone.now()
    offsets = [
        timedelta(hours=-9),
        timedelta(hours=14),
        timedelta(days=-365 * 20),
        timedelta(days=365 * 70),
        timedelta(0),
    ]
    brs: dict[str, int] = {}
    sent: list[tuple[str, str, datetime]] = []
    started = timezone.now()
    for i, step in enumerate(steps_of(session)):
        onset = now + offsets[i % len(offsets)]
        value = brs[step.code] if step.phase == "br" else value_for(step.code, step.phase)
        response = client.post(
            f"/api/v1/sessions/{session.token}/responses",
            data=json.dumps(
                {
                    "client_id": str(uuid.uuid4()),
                    "event": step.code,
                    "phase": step.phase,
                    "value": value,
                    "rt_ms": 500,
                    "onset_at": onset.isoformat(),
                }
            ),
            content_type="application/json",
        )
        assert response.status_code == 201, response.json()
        if step.phase == "e1":
            brs[step.code] = response.json()["br"]
        sent.append((step.code, step.phase, onset))
    ended = timezone.now()
    assert client.post(f"/api/v1/sessions/{session.token}/complete").status_code == 200

    rows = list(
        Response.objects.filter(session=session)
        .order_by("id")
        .values_list("event__code", "phase", "onset_at", "received_at")
    )
    assert [(e, p, o) for e, p, o, _ in rows] == sent
    received = [r for *_, r in rows]
    assert all(started <= r <= ended for r in received)
    assert received == sorted(received)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_browser_clock_five_hours_ahead(
    browser: Browser, live_server: Any, small_study: Callable[..., Study], robot: type[TaskRobot]
) -> None:
    small_study(n_events=3, collect_confidence=True)
    context = browser.new_context()
    context.add_init_script(SKEWED_DATE % SKEW_HOURS)
    posted: list[dict[str, Any]] = []

    def log(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/responses"):
            posted.append(dict(request.post_data_json or {}))

    context.on("request", log)
    started = timezone.now()
    page, token = enrol(context, live_server.url, "demo")
    assert page.evaluate("() => new Date().getTime() - performance.timeOrigin") > 4.9 * 3600e3
    session = Session.objects.get(token=token)
    bot = robot(page)
    assert bot.run() == "complete"
    ended = timezone.now()
    assert_completed(page, session)
    assert_session_stored(session, bot)

    rows = list(
        Response.objects.filter(session=session)
        .order_by("id")
        .values_list("client_id", "onset_at", "received_at", "rt_ms")
    )
    by_client = {p["client_id"]: p for p in posted}
    assert len(by_client) == len(rows)  # no retries here: one POST per row
    for client_id, onset_at, received_at, rt_ms in rows:
        sent = by_client[str(client_id)]
        assert onset_at == parse(sent["onset_at"])  # the client's clock, as sent
        assert onset_at - started > timedelta(hours=SKEW_HOURS - 0.1)
        assert started <= received_at <= ended  # the server's clock
        assert rt_ms == sent["rt_ms"] and 0 <= rt_ms < 60_000  # performance.now: unskewed
    received = [r[2] for r in rows]
    assert received == sorted(received)
    session.refresh_from_db()
    assert session.started_at is not None and started <= session.started_at <= ended
    assert session.completed_at is not None and started <= session.completed_at <= ended
    assert datetime.now(UTC) - session.completed_at < timedelta(minutes=5)
