"""What the virtual clients do: the ceiling loop, the response loop, realistic participants.

Every answer a client sends is logged (client_id, session token, event, phase, value,
acknowledged) so the run can compare it row by row with the Response table.
"""

import asyncio
import itertools
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bench.load.loadgen import Connection, HttpError, Recorder
from protocol.phases import BY_NAME, RangeSource

RETRIES = 3  # like the task page's queue: a failed send is retried with the same client_id
_ip_counter = itertools.count(1)


def fresh_ip() -> str:
    """A distinct client address per participant (X-Forwarded-For), as 2,000 browsers have.

    The enrol throttle keys on it; see the README for what that means in production.
    """
    n = next(_ip_counter)
    return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"


@dataclass
class Plan:
    """One enrolled session as its client sees it."""

    token: str
    steps: list[tuple[str, str]]
    scale: tuple[int, int]
    min_br_view_ms: int
    next: int = 0
    brs: dict[str, int] = field(default_factory=dict)
    broken: bool = False

    @property
    def done(self) -> bool:
        return self.next >= len(self.steps)


# [client_id, token, event, phase, value, acknowledged]
AnswerLog = list[list[Any]]


async def enrol(
    conn: Connection,
    rec: Recorder,
    slug: str,
    *,
    external_id: str | None = None,
    retries: int = 1,
) -> Plan | None:
    """Enrol through the API, then read the session's steps as the task page does.

    With an external id (a recruiter's participant id) a retry is safe: the server gives
    the same session back, so a timed-out enrolment is retried like a reloaded page.
    """
    body: dict[str, Any] = {"consent": True}
    if external_id:
        body["external_id"] = external_id
    headers = {"X-Forwarded-For": fresh_ip()}
    for attempt in range(retries):
        t0 = time.perf_counter()
        try:
            ans = await conn.request("POST", f"/api/v1/studies/{slug}/enrol", body, headers)
        except HttpError as exc:
            rec.error("enrol", str(exc))
            await asyncio.sleep(attempt + 1)
            continue
        rec.add("enrol", t0, ans.status)
        if ans.status in (200, 201) or ans.status < 500:
            break
    else:
        return None
    if ans.status not in (200, 201):
        return None
    token = ans.json()["session_token"]
    t0 = time.perf_counter()
    try:
        ans = await conn.request("GET", f"/api/v1/sessions/{token}")
    except HttpError as exc:
        rec.error("state", str(exc))
        return None
    rec.add("state", t0, ans.status)
    if ans.status != 200:
        return None
    state = ans.json()
    return Plan(
        token=token,
        steps=[(s["event"], s["phase"]) for s in state["steps"]],
        scale=(state["scale"]["min"], state["scale"]["max"]),
        min_br_view_ms=state["config"]["min_br_view_ms"],
    )


async def enrol_many(port: int, slug: str, n: int, *, concurrency: int = 4) -> list[Plan]:
    """n sessions enrolled before a measurement (not measured)."""
    rec = Recorder()
    plans: list[Plan] = []
    todo = iter(range(n))

    async def one() -> None:
        conn = Connection(port, timeout=30)
        for _ in todo:
            plan = await enrol(conn, rec, slug)
            if plan is None:
                raise RuntimeError(f"enrolment failed: {dict(rec.errors)} {rec.summary('enrol')}")
            plans.append(plan)
        conn.close()

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return plans


def _answer_body(plan: Plan, event: str, phase: str) -> dict[str, Any]:
    low, high = plan.scale
    if phase == "br":
        value = plan.brs[event]
        rt_ms = max(plan.min_br_view_ms, 1500) + random.randint(0, 1500)  # noqa: S311
    elif BY_NAME[phase].range.source is RangeSource.FIXED:  # a rating
        fixed = BY_NAME[phase].range
        value, rt_ms = random.randint(fixed.low, fixed.high), random.randint(400, 4000)  # noqa: S311
    else:
        value, rt_ms = random.randint(low, high), random.randint(800, 6000)  # noqa: S311
    return {
        "client_id": str(uuid.uuid4()),
        "event": event,
        "phase": phase,
        "value": value,
        "rt_ms": rt_ms,
        # The task page always sends it; a body without it is answered 500 (see README).
        "onset_at": datetime.now(UTC).isoformat(),
    }


async def answer_next(conn: Connection, rec: Recorder, plan: Plan, log: AnswerLog) -> bool:
    """Send the plan's next step (retrying errors with the same client_id); False: refused."""
    event, phase = plan.steps[plan.next]
    body = _answer_body(plan, event, phase)
    entry = [body["client_id"], plan.token, event, phase, body["value"], False]
    log.append(entry)
    path = f"/api/v1/sessions/{plan.token}/responses"
    for attempt in range(RETRIES):
        t0 = time.perf_counter()
        try:
            ans = await conn.request("POST", path, body)
        except HttpError as exc:
            rec.error("response", str(exc))
            await asyncio.sleep(0.2 * (attempt + 1))
            continue
        rec.add("response", t0, ans.status)
        if ans.status in (200, 201):
            entry[5] = True
            if phase == "e1":
                plan.brs[event] = ans.json()["br"]
            plan.next += 1
            return True
        if ans.status < 500:
            break
    plan.broken = True
    return False


async def closed_loop_ceiling(
    port: int, path: str, *, connections: int, seconds: float, warmup: float
) -> tuple[Recorder, float, float]:
    """connections clients posting to the ceiling view with no pause."""
    rec = Recorder()
    stop_at = time.perf_counter() + warmup + seconds

    async def client(i: int) -> None:
        conn = Connection(port)
        n = 0
        while time.perf_counter() < stop_at:
            n += 1
            t0 = time.perf_counter()
            try:
                ans = await conn.request("POST", path, {"value": i * 1_000_000 + n})
            except HttpError as exc:
                rec.error("ceiling", str(exc))
                continue
            rec.add("ceiling", t0, ans.status)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(connections)))
    return rec, start + warmup, stop_at


async def closed_loop_responses(
    port: int,
    plans: list[Plan],
    *,
    connections: int,
    seconds: float,
    warmup: float,
    log: AnswerLog,
) -> tuple[Recorder, float, float, int]:
    """connections clients, each posting its own sessions' steps in order, no pause."""
    rec = Recorder()
    stop_at = time.perf_counter() + warmup + seconds
    per_client = [plans[i::connections] for i in range(connections)]
    ran_out = 0

    async def client(own: list[Plan]) -> None:
        nonlocal ran_out
        conn = Connection(port)
        queue = list(own)
        while time.perf_counter() < stop_at:
            while queue and (queue[0].done or queue[0].broken):
                queue.pop(0)
            if not queue:
                ran_out += 1
                break
            await answer_next(conn, rec, queue[0], log)
        conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(own) for own in per_client))
    return rec, start + warmup, stop_at, ran_out


@dataclass
class Timeline:
    enrolled: list[float] = field(default_factory=list)
    completing: list[float] = field(default_factory=list)
    completed_tokens: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    failed: int = 0


async def realistic(
    port: int,
    slug: str,
    *,
    participants: int,
    pause: float,
    ramp: float,
    log: AnswerLog,
    time_limit: float,
) -> tuple[Recorder, Timeline]:
    """participants who enrol (spread over ramp s), answer each step after ~pause s, complete."""
    rec = Recorder()
    tl = Timeline()

    def think() -> float:
        return pause * random.uniform(0.75, 1.25)  # noqa: S311

    async def participant(i: int) -> None:
        await asyncio.sleep(ramp * i / participants)
        conn = Connection(port, timeout=30)
        plan = await enrol(conn, rec, slug, external_id=f"load-{i}", retries=RETRIES)
        if plan is None:
            tl.failed += 1
            return
        tl.enrolled.append(time.perf_counter())
        tl.tokens.append(plan.token)
        while not plan.done:
            await asyncio.sleep(think())
            if not await answer_next(conn, rec, plan, log):
                tl.failed += 1
                return
        await asyncio.sleep(think())
        tl.completing.append(time.perf_counter())
        for attempt in range(RETRIES):
            t0 = time.perf_counter()
            try:
                ans = await conn.request("POST", f"/api/v1/sessions/{plan.token}/complete")
            except HttpError as exc:
                rec.error("complete", str(exc))
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            rec.add("complete", t0, ans.status)
            if ans.status == 200:
                tl.completed_tokens.append(plan.token)
                break
            if ans.status < 500:
                break
        else:
            tl.failed += 1
        conn.close()

    tasks = [asyncio.create_task(participant(i)) for i in range(participants)]
    done, pending = await asyncio.wait(tasks, timeout=time_limit)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        tl.failed += len(pending)
    for task in done:
        if task.exception() is not None:
            tl.failed += 1
    return rec, tl
