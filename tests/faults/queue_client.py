"""A participant over real HTTP that behaves like static/task/queue.js, and the row-by-row check.

The client keeps the browser queue's contract: one client_id per answer, kept on every retry;
answers sent strictly in order, one at a time; a network error, a timeout, 408, 429 or a 5xx
is retried with "equal jitter" exponential backoff; any other 4xx is a refusal (the test
fails: a participant who answers in order must never see one).
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from tests.e2e.conftest import item_choice, item_number, value_for


def retryable(status: int) -> bool:
    """queue.js isRetryable: status 0 is a network error or a timeout."""
    return status == 0 or status == 408 or status == 429 or status >= 500


class Refused(AssertionError):
    pass


@dataclass
class Outcome:
    at: float  # time.monotonic()
    status: int  # 0: network error or timeout


@dataclass
class QueueClient:
    """One participant; `outcomes` logs every HTTP attempt, `sent` every answer stored."""

    base_url: str
    base_delay_s: float = 0.1
    max_delay_s: float = 2.0
    timeout_s: float = 5.0
    give_up_after_s: float = 60.0
    http: requests.Session = field(default_factory=requests.Session)
    outcomes: list[Outcome] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    token: str = ""
    # Viewing time sent with a base-rate screen: at least the study's min_br_view_ms.
    br_rt_ms: int = 250

    def _once(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        try:
            response = self.http.request(
                method, self.base_url + path, json=body, timeout=self.timeout_s
            )
        except requests.RequestException:
            self.outcomes.append(Outcome(time.monotonic(), 0))
            # A dropped keep-alive connection must not be reused for the retry.
            self.http.close()
            return 0, None
        self.outcomes.append(Outcome(time.monotonic(), response.status_code))
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None  # a proxy's (or the web server's) HTML error page
        return response.status_code, payload

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One request, repeated with backoff while it is retryable."""
        started = time.monotonic()
        attempt = 0
        while True:
            status, payload = self._once(method, path, body)
            if not retryable(status):
                return status, payload
            attempt += 1
            if time.monotonic() - started > self.give_up_after_s:
                raise AssertionError(f"{method} {path}: still {status} after {attempt} tries")
            ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
            time.sleep(ceiling / 2 + random.random() * ceiling / 2)

    def enrol(self, slug: str) -> list[dict[str, Any]]:
        status, body = self.call("POST", f"/api/v1/studies/{slug}/enrol", {"consent": True})
        assert status == 201, (status, body)
        self.token = str(body["session_token"])
        status, state = self.call("GET", f"/api/v1/sessions/{self.token}")
        assert status == 200, (status, state)
        return list(state["steps"])

    def answer(self, step: dict[str, Any], br: int | None, onset_at: str | None = None) -> Any:
        """Store one answer (as the queue would: same client_id on every retry)."""
        event, phase = step["event"], step["phase"]
        if step.get("kind") == "item":  # a questionnaire item: the robot's choice of its options
            options = step["options"]
            value = (
                options[item_choice(step["item"], len(options))]["value"]
                if options
                else item_number(step["item"], step["min"], step["max"])
            )
            body = {
                "client_id": str(uuid.uuid4()),
                "phase": "item",
                "instrument": step["instrument"],
                "item": step["item"],
                "value": value,
                "rt_ms": 900 + len(self.sent),
                "onset_at": onset_at,
            }
            status, row = self.call("POST", f"/api/v1/sessions/{self.token}/responses", body)
            if status not in (200, 201):
                raise Refused(f"{body} refused: {status} {row}")
            return row
        item = {
            "client_id": str(uuid.uuid4()),
            "event": event,
            "phase": phase,
            "value": br if phase == "br" else value_for(event, phase),
            "rt_ms": self.br_rt_ms if phase == "br" else 900 + len(self.sent),
            "onset_at": onset_at,
        }
        status, row = self.call("POST", f"/api/v1/sessions/{self.token}/responses", item)
        if status not in (200, 201):
            raise Refused(f"{item} refused: {status} {row}")
        assert row["client_id"] == item["client_id"] and row["value"] == item["value"], row
        self.sent.append(item)
        return row

    def complete(self) -> dict[str, Any]:
        status, body = self.call("POST", f"/api/v1/sessions/{self.token}/complete")
        assert status == 200, (status, body)
        return dict(body)


def run_session(client: QueueClient, slug: str, pause_s: float = 0.0) -> dict[str, Any]:
    """Enrol, answer every step in order, complete; returns the completion."""
    steps = client.enrol(slug)
    shown: dict[str, int] = {}
    for step in steps:
        row = client.answer(step, shown.get(step["event"]))
        if step["phase"] == "e1":
            shown[step["event"]] = int(row["br"])
        if pause_s:
            time.sleep(pause_s)
    return client.complete()


def rows_sql() -> str:
    """The stored answers of one session (by token), in the order they were stored."""
    return (
        "SELECT e.code, r.phase, r.value, r.client_id::text, r.rt_ms "
        "FROM trials_response r "
        "JOIN trials_event e ON e.id = r.event_id "
        "JOIN trials_session s ON s.id = r.session_id "
        "WHERE s.token = %s ORDER BY r.id"
    )


def assert_rows_match(rows: list[tuple[Any, ...]], client: QueueClient) -> None:
    """Exactly one row per answer sent, in order, each holding what the client sent."""
    expected = [
        (i["event"], i["phase"], i["value"], i["client_id"], i["rt_ms"]) for i in client.sent
    ]
    assert [tuple(r) for r in rows] == expected
    pairs = [(r[0], r[1]) for r in rows]
    assert len(pairs) == len(set(pairs))  # one row per (event, phase)


def recovery_gaps(outcomes: list[Outcome]) -> list[float]:
    """Seconds from each first failed attempt to the next success (the queue's recovery)."""
    gaps: list[float] = []
    failed_at: float | None = None
    for outcome in outcomes:
        if retryable(outcome.status):
            failed_at = outcome.at if failed_at is None else failed_at
        elif failed_at is not None:
            gaps.append(outcome.at - failed_at)
            failed_at = None
    return gaps
