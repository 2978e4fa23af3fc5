"""Fixtures of the participant-side tests: a thin client for the participant API."""

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from protocol.phases import PHASES, Kind

RATING_SET = frozenset(p.name for p in PHASES if p.kind is Kind.RATING)


class ParticipantApi:
    """The participant API as the browser task calls it (JSON over the Django test client)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        # Base rates learnt from e1 answers, as the task script keeps them.
        self.brs: dict[tuple[str, str], int] = {}

    def enrol(self, slug: str, **body: Any) -> Any:
        body.setdefault("consent", True)
        return self.client.post(
            f"/api/v1/studies/{slug}/enrol", data=json.dumps(body), content_type="application/json"
        )

    def state(self, token: str) -> Any:
        return self.client.get(f"/api/v1/sessions/{token}")

    def post_raw(
        self, token: str, body: str | bytes, content_type: str = "application/json"
    ) -> Any:
        return self.client.post(
            f"/api/v1/sessions/{token}/responses", data=body, content_type=content_type
        )

    def respond(
        self,
        token: str,
        *,
        event: str,
        phase: str,
        value: Any,
        rt_ms: Any = 2500,
        client_id: str | None = None,
        onset_at: str | None = "2026-01-05T10:00:00+00:00",
        **extra: Any,
    ) -> Any:
        body = {
            "client_id": client_id or str(uuid.uuid4()),
            "event": event,
            "phase": phase,
            "value": value,
            "rt_ms": rt_ms,
            "onset_at": onset_at,
            **extra,
        }
        return self.post_raw(token, json.dumps(body))

    def complete(self, token: str) -> Any:
        return self.client.post(f"/api/v1/sessions/{token}/complete")

    def value_for(self, token: str, step: dict[str, Any], estimate: int) -> int:
        """A valid answer to a step: the base rate for br, 3 for ratings, else `estimate`."""
        if step["phase"] == "br":
            if step.get("br") is not None:
                return int(step["br"])
            return self.brs[(token, step["event"])]
        if step["phase"] in RATING_SET:
            return 3
        return estimate

    def answer(
        self,
        token: str,
        n: int | None = None,
        *,
        estimate: int | Callable[[dict[str, Any]], int] = 40,
    ) -> list[dict[str, Any]]:
        """Answer the next `n` steps (all when None), in order; returns the 201 bodies."""
        steps = self.state(token).json()["steps"]
        bodies = []
        for step in steps if n is None else steps[:n]:
            e = estimate(step) if callable(estimate) else estimate
            res = self.respond(
                token,
                event=step["event"],
                phase=step["phase"],
                value=self.value_for(token, step, e),
            )
            assert res.status_code == 201, (step, res.json())
            body = res.json()
            if step["phase"] == "e1":
                self.brs[(token, step["event"])] = body["br"]
            bodies.append(body)
        return bodies


@pytest.fixture
def api(client: Client) -> ParticipantApi:
    return ParticipantApi(client)


@pytest.fixture(autouse=True)
def _fresh_throttle_cache() -> None:
    """The enrol throttle counts in the cache: start every test with an empty one."""
    from django.core.cache import cache

    cache.clear()
