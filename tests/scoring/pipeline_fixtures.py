"""Helpers of the scoring pipeline tests (and bench/bench_score_latency.py).

- a participant that answers a whole session through the participant API, over the
  Django test client or over real HTTP;
- the hand-built 8-event session whose scores are worked out by hand;
- `Stack`: the web server (common.serve), Celery worker, beat and redis-server subprocesses
  started for a test, each in its own process group, always stopped at teardown.

tests/scoring/conftest.py belongs to the pure-module tests; these fixtures are imported
by the test modules that use them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client

from scoring.pipeline import score_all
from scoring.selectors import trials_frame
from tests.serving import VENV_BIN, serve_argv
from trials.models import Session

REPO = Path(__file__).resolve().parents[2]

# (status, JSON body) of a call to the participant API: method, path, body.
Call = Callable[[str, str, "dict[str, Any] | None"], "tuple[int, Any]"]
# The value to answer at a step: (event code, phase, base rate shown or None) -> value.
Answer = Callable[[str, str, "int | None"], int]

# The hand-built session: make_study(n_events=8) gives events A01..A08 with base rates
# 20, 30, 40, 50, 60, 20, 30, 40 and one practice event PR1 (base rate 50).
# event number -> (E1, E2); BR < E1 is good news, BR > E1 bad news, BR == E1 neutral.
HAND_ANSWERS = {
    1: (30, 24),  # BR 20, good, EE 10, update 6
    2: (40, 35),  # BR 30, good, EE 10, update 5
    3: (60, 50),  # BR 40, good, EE 20, update 10
    4: (40, 44),  # BR 50, bad,  EE 10, update 4
    5: (40, 50),  # BR 60, bad,  EE 20, update 10
    6: (20, 25),  # BR 20, neutral: excluded
    7: (20, 22),  # BR 30, bad,  EE 10, update 2
    8: (50, 48),  # BR 40, good, EE 10, update 2
}
PRACTICE_E1 = 40


def hand_answer(event: str, phase: str, br: int | None) -> int:
    """HAND_ANSWERS as an Answer; reaction times come from hand_rt."""
    if phase == "br":
        assert br is not None
        return br
    if event.startswith("PR"):
        return PRACTICE_E1
    e1, e2 = HAND_ANSWERS[int(event[1:])]
    return e1 if phase == "e1" else e2


def hand_rt(event: str, phase: str) -> int:
    """E1 of event n took 2000 + 100 n ms, E2 1500 + 50 n ms; the base rate 2000 ms."""
    if phase == "br" or event.startswith("PR"):
        return 2000
    n = int(event[1:])
    return 2000 + 100 * n if phase == "e1" else 1500 + 50 * n


def django_call(client: Client) -> Call:
    """The participant API through the Django test client (in-process)."""

    def call(method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(
                path, data=json.dumps(body or {}), content_type="application/json"
            )
        return response.status_code, response.json() if response.content else None

    return call


def http_call(base_url: str, http: requests.Session | None = None, timeout: float = 10) -> Call:
    """The participant API over real HTTP."""
    http = http or requests.Session()

    def call(method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        response = http.request(method, base_url + path, json=body, timeout=timeout)
        return response.status_code, response.json() if response.content else None

    return call


def session_answer_all(
    call: Call,
    slug: str,
    answer: Answer = hand_answer,
    rt: Callable[[str, str], int] = hand_rt,
) -> str:
    """Enrol in a study and answer every step of the session, in order; returns its token."""
    status, body = call("POST", f"/api/v1/studies/{slug}/enrol", {"consent": True})
    assert status == 201, body
    token = str(body["session_token"])
    status, state = call("GET", f"/api/v1/sessions/{token}", None)
    assert status == 200, state
    shown: dict[str, int] = {}
    for step in state["steps"]:
        event, phase = step["event"], step["phase"]
        status, row = call(
            "POST",
            f"/api/v1/sessions/{token}/responses",
            {
                "client_id": str(uuid.uuid4()),
                "event": event,
                "phase": phase,
                "value": answer(event, phase, shown.get(event)),
                "rt_ms": rt(event, phase),
                "onset_at": None,
            },
        )
        assert status == 201, (step, row)
        if phase == "e1":
            shown[event] = int(row["br"])
    return token


def session_complete_http(call: Call, token: str) -> tuple[int, Any]:
    return call("POST", f"/api/v1/sessions/{token}/complete", None)


def session_id_of(token: str) -> int:
    return int(Session.objects.values_list("pk", flat=True).get(token=token))


def expected_score(session_id: int) -> tuple[dict[str, Any], list[str]]:
    """What the stored row must hold: score_all on the session's trials, NaN as None."""
    session = Session.objects.select_related("participant__study").get(pk=session_id)
    scores = score_all(
        trials_frame(session_ids=[session_id]),
        min_valid_per_valence=session.participant.study.min_valid_per_valence,
        lr_max=session.participant.study.lr_max,
    )
    row = scores.loc[session_id]
    values: dict[str, Any] = {}
    for name, value in row.items():
        if name == "flags":
            continue
        plain = value.item() if hasattr(value, "item") else value
        values[str(name)] = None if isinstance(plain, float) and math.isnan(plain) else plain
    return values, list(row["flags"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """The URL of the database this process uses now (the test database once set up)."""
    db = settings.DATABASES["default"]
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll check() until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    # True once the process serves (polled by Stack.ready); its URL for a web server.
    is_ready: Callable[[], bool] = lambda: True
    url: str = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Stack:
    """Subprocesses of a full stack against one database and one Redis URL.

    The start methods return at once, so that slow start-ups overlap; `ready()` waits
    for the processes given.
    """

    database_url: str
    redis_url: str
    log_dir: Path
    procs: list[Proc] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BW_TEST_")}
        env.update(
            DJANGO_SETTINGS_MODULE="belief_web.settings",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            DB_POOL="0",
            PYTHONUNBUFFERED="1",
        )
        env.pop("TEST_REDIS_URL", None)
        env.pop("CELERY_BROKER_URL", None)
        env.update(extra)
        return env

    def start(self, name: str, argv: list[str], **env: str) -> Proc:
        log = self.log_dir / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                cwd=REPO,
                env=self.env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill takes its children
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def web(
        self, name: str = "web", workers: int = 2, ready_path: str = "/healthz", **env: str
    ) -> Proc:
        """The web server (common.serve) on a free port (proc.url); ready once ready_path
        answers at all."""
        port = free_port()
        proc = self.start(name, serve_argv(port, workers), **env)
        proc.url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                # Any answer (503: broker down, 404) means the web server is up.
                return requests.get(proc.url + ready_path, timeout=5).status_code < 600
            except (requests.ConnectionError, requests.Timeout):
                return False

        proc.is_ready = answers
        return proc

    def worker(self, name: str = "worker", concurrency: int = 1, **env: str) -> Proc:
        """A prefork Celery worker (one child by default); ready once it logs so."""
        proc = self.start(
            name,
            [
                str(VENV_BIN / "celery"),
                "-A",
                "belief_web",
                "worker",
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "--hostname",
                f"{name}-{uuid.uuid4().hex[:6]}@%h",
                # Start-up speed only: no broadcast handshake with other workers.
                "--without-mingle",
                "--without-gossip",
            ],
            **env,
        )
        proc.is_ready = lambda: " ready." in proc.text()
        return proc

    def beat(self, name: str = "beat", **env: str) -> Proc:
        proc = self.start(
            name,
            [
                str(VENV_BIN / "celery"),
                "-A",
                "belief_web",
                "beat",
                "--loglevel=INFO",
                "--schedule",
                str(self.log_dir / f"{name}-schedule"),
            ],
            **env,
        )
        proc.is_ready = lambda: "beat: Starting" in proc.text()
        return proc

    def redis_server(self, port: int, name: str = "redis") -> Proc:
        """A throw-away redis-server without persistence; ready once it answers PING."""
        import redis

        proc = self.start(
            name,
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
        )
        client = redis.Redis(port=port, socket_timeout=1)

        def pong() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        proc.is_ready = pong
        return proc

    def ready(self, *procs: Proc, timeout: float = 60) -> None:
        """Wait until every process given serves; fail at once if one exits."""
        waiting = list(procs)

        def all_ready() -> bool:
            for proc in list(waiting):
                self.check_alive(proc)
                if proc.is_ready():
                    waiting.remove(proc)
            return not waiting

        self.wait(f"{', '.join(p.name for p in procs)} to start", all_ready, timeout)

    def wait(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        """wait_for, with the tail of every log of this stack in the failure message."""
        try:
            return wait_for(what, check, timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None

    def check_alive(self, proc: Proc) -> None:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}):\n{tail(proc)}")

    def wait_log(self, proc: Proc, needle: str, timeout: float) -> None:
        def logged() -> bool:
            if needle in proc.text():
                return True
            self.check_alive(proc)
            return False

        self.wait(f"'{needle}' in the {proc.name} log", logged, timeout=timeout)

    def kill(self, proc: Proc, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group of one process started here, and reap it."""
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, sig)
        try:
            proc.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)

    def stop_all(self) -> None:
        """SIGTERM every process group started here, SIGKILL what is left after 3 s."""
        for proc in reversed(self.procs):
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in reversed(self.procs):
            try:
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill(proc)
            # Children left behind by a parent that exited first.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} ---\n{tail(p)}" for p in self.procs)


def tail(proc: Proc, lines: int = 40) -> str:
    return "\n".join(proc.text().splitlines()[-lines:])


def redis_db_url(url: str, db: int) -> str:
    """The same Redis server as `url`, database `db`."""
    base = url.split("?")[0].rstrip("/")
    head, _, last = base.rpartition("/")
    server = head if last.isdigit() and head.count("/") >= 2 else base
    return f"{server}/{db}"


# A Redis database of these tests' own on the shared server, flushed before use.
PIPELINE_REDIS_DB = 13


@pytest.fixture(scope="module")
def pipeline_redis(request: pytest.FixtureRequest) -> str:
    """The pipeline tests' own Redis database (on TEST_REDIS_URL's server), flushed."""
    import redis

    from tests.conftest import need

    base = os.environ.get("TEST_REDIS_URL", "")
    need("Redis", bool(base))
    url = redis_db_url(base, PIPELINE_REDIS_DB)
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="module")
def module_stack(
    django_db_setup: None,
    pipeline_redis: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """A Stack on the test database and the pipeline Redis; everything stopped at the end."""
    from tests.conftest import is_postgres, need

    need("PostgreSQL", is_postgres())
    stack = Stack(
        database_url=database_url(),
        redis_url=pipeline_redis,
        log_dir=tmp_path_factory.mktemp("pipeline-logs"),
    )
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture(scope="module")
def web_url(module_stack: Stack) -> str:
    """The web server (2 workers) on the pipeline Redis, shared by the module's tests."""
    web = module_stack.web()
    module_stack.ready(web)
    return web.url


@pytest.fixture
def db_stack(transactional_db: None, postgres: None, tmp_path: Path) -> Iterator[Stack]:
    """Processes of one test on the test database, with no Redis of their own; stopped
    before the database is flushed."""
    stack = Stack(database_url=database_url(), redis_url="", log_dir=tmp_path)
    try:
        yield stack
    finally:
        stack.stop_all()


@pytest.fixture
def own_stack(transactional_db: None, module_stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """Processes of one test only, stopped before its database is flushed."""
    stack = Stack(
        database_url=module_stack.database_url, redis_url=module_stack.redis_url, log_dir=tmp_path
    )
    try:
        yield stack
    finally:
        stack.stop_all()
