"""The embedded default (`make run`: runserver, SQLite, no broker) under several participants.

A real server process with the embedded settings, as `make run` starts it, and participants
answering at the same time over HTTP: no answer refused or retried ("database is locked"),
every completion answered before its session is scored (the scoring runs in a thread after
the response), and every session scored in the end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.faults.processes import REPO, free_port
from tests.faults.queue_client import QueueClient, retryable
from tests.serving import VENV_BIN

PARTICIPANTS = 6
# The test hook of scoring.tasks: each scoring holds this long before it starts, so a
# completion that waited for its scoring would take at least this long.
SCORE_HOLD_S = 3.0


@dataclass
class Embedded:
    url: str
    database: Path
    log: Path

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.database, timeout=20)) as db:
            return list(db.execute(sql, params).fetchall())


def _environment(database: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("REDIS_URL", "TEST_REDIS_URL", "CELERY_BROKER_URL", "DB_POOL")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="belief_web.settings",
        DATABASE_URL=f"sqlite:///{database}",
        DEBUG="1",
        PYTHONUNBUFFERED="1",
        DEMO_PASSWORD="demo-password-for-tests",
        BW_TEST_SCORE_DELAY_S=str(SCORE_HOLD_S),
    )
    env.pop("EMBEDDED_TASKS_IN_THREAD", None)
    return env


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    """`make run`'s three commands, on a fresh SQLite file and a free port."""
    database = tmp_path / "db.sqlite3"
    env = _environment(database)
    python = str(VENV_BIN / "python")
    for command in (["migrate", "--no-input", "-v0"], ["load_demo"]):
        subprocess.run(  # noqa: S603
            [python, "manage.py", *command], cwd=REPO, env=env, check=True, capture_output=True
        )
    port = free_port()
    log = tmp_path / "runserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603
            [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Embedded(url=url, database=database, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)


def _participant(url: str) -> tuple[QueueClient, dict[str, object], float]:
    client = QueueClient(base_url=url, br_rt_ms=2500, timeout_s=30)
    steps = client.enrol("demo")
    shown: dict[str, int] = {}
    for step in steps:
        row = client.answer(step, shown.get(step["event"]))
        if step["phase"] == "e1":
            shown[step["event"]] = int(row["br"])
    started = time.monotonic()
    completion = client.complete()
    return client, completion, time.monotonic() - started


def test_concurrent_participants_on_sqlite(embedded: Embedded) -> None:
    assert embedded.query("PRAGMA journal_mode") == [("wal",)]
    with ThreadPoolExecutor(PARTICIPANTS) as pool:
        done = list(pool.map(_participant, [embedded.url] * PARTICIPANTS))
    finished = time.monotonic()
    tokens = [client.token for client, _, _ in done]

    # Nothing retried: every request of every participant was answered first time.
    statuses = {o.status for client, _, _ in done for o in client.outcomes}
    assert statuses == {200, 201}, [s for s in statuses if retryable(s)]
    # Every answer stored once, as sent.
    for client, completion, _ in done:
        rows = embedded.query(
            "SELECT e.code, r.phase, r.value FROM trials_response r "
            "JOIN trials_event e ON e.id = r.event_id "
            "JOIN trials_session s ON s.id = r.session_id WHERE s.token = ? ORDER BY r.id",
            client.token,
        )
        assert rows == [(i["event"], i["phase"], i["value"]) for i in client.sent]
        assert len(rows) == 2 * 2 + 40 * 3  # practice: e1 and br; 40 events: e1, br, e2
        assert str(completion["completion_code"])

    # Completion did not wait for the scoring: each answered well before the scoring's hold.
    assert max(seconds for _, _, seconds in done) < SCORE_HOLD_S - 1
    # The fresh database holds these sessions only (the demo study starts empty).
    assert sorted(t for (t,) in embedded.query("SELECT token FROM trials_session")) == sorted(
        tokens
    )
    scores = "SELECT status, COUNT(*) FROM scoring_score GROUP BY status"
    if time.monotonic() - finished < SCORE_HOLD_S - 1:
        assert dict(embedded.query(scores)).get("done", 0) < PARTICIPANTS

    # ... and still scored, in the server process, without a broker.
    deadline = time.monotonic() + 120
    while dict(embedded.query(scores)) != {"done": PARTICIPANTS}:
        assert time.monotonic() < deadline, embedded.query(scores)
        time.sleep(0.5)
    biases = embedded.query("SELECT json_extract(\"values\", '$.update_bias') FROM scoring_score")
    assert len(biases) == PARTICIPANTS and all(isinstance(b, float) for (b,) in biases)

    log = embedded.log.read_text()
    for noise in ("database is locked", "Traceback", "No hostname was supplied", " 500 "):
        assert noise not in log
    assert "favicon" not in log or '"GET /favicon.ico HTTP/1.1" 404' not in log


def test_every_page_has_an_icon_and_no_404(embedded: Embedded) -> None:
    """The icon the pages link to, and /favicon.ico for the rest, are served by the server."""
    http = requests.Session()
    pages = ["/s/demo/", "/s/demo/?lang=fr", "/accounts/login/"]
    for page in pages:
        html = http.get(embedded.url + page, timeout=10).text
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in html
    icon = http.get(embedded.url + "/static/favicon.svg", timeout=10)
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg ")
    legacy = http.get(embedded.url + "/favicon.ico", timeout=10, allow_redirects=False)
    assert legacy.status_code == 301 and legacy.headers["Location"] == "/static/favicon.svg"
    assert http.get(embedded.url + "/favicon.ico", timeout=10).content == icon.content
    time.sleep(0.2)  # runserver logs a request once it has answered it
    assert " 404 " not in embedded.log.read_text()
