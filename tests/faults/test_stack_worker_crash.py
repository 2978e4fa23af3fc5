"""`make stack` survives a worker crash: the worker comes back, web and beat stay up.

Runs what `make stack` runs once migrated (`honcho start` with the Procfile, the venv first
on PATH), against the test database and a throw-away redis-server of its own; SIGKILLs the
Celery worker's main process (as the OOM killer would); the supervisor starts it again and
the new worker scores a session completed afterwards.
"""

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from scoring.models import Score
from tests.factories import make_study
from tests.faults.processes import REPO, free_port
from tests.scoring.pipeline_fixtures import (
    Stack,
    database_url,
    http_call,
    session_answer_all,
    session_complete_http,
    session_id_of,
    wait_for,
)
from tests.serving import VENV_BIN

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_port(transactional_db: None, postgres: None, tmp_path: Path) -> Iterator[int]:
    own = Stack(database_url=database_url(), redis_url="", log_dir=tmp_path)
    port = free_port()
    try:
        own.ready(own.redis_server(port))
        yield port
    finally:
        own.stop_all()


def celery_main_pid(root: int, role: str) -> int:
    """The main process of `celery ... <role>` among the descendants of `root` (from /proc)."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        table[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = table.get(pid, (0, ""))[0]
        return False

    def is_role(cmdline: str) -> bool:
        return "celery" in cmdline and f" {role} " in f"{cmdline} " and "supervise" not in cmdline

    mains = [
        pid
        for pid, (parent, cmdline) in table.items()
        if is_role(cmdline) and descends(pid) and not is_role(table.get(parent, (0, ""))[1])
    ]
    assert len(mains) == 1, (role, mains)
    return mains[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_stack_survives_a_worker_crash(redis_port: int, tmp_path: Path) -> None:
    make_study(slug="stacked", n_events=8, n_timepoints=1, arms=("patients",))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        DATABASE_URL=database_url(),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        PORT=str(port),
        WEB_WORKERS="1",
        WORKER_CONCURRENCY="1",
        BEAT_SCHEDULE=str(tmp_path / "celerybeat-schedule"),
        DB_POOL="0",
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "honcho.log"
    with log.open("wb") as out:
        honcho = subprocess.Popen(
            [str(VENV_BIN / "honcho"), "start", "-f", str(REPO / "Procfile")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def text() -> str:
        return log.read_text(errors="replace")

    def up() -> bool:
        assert honcho.poll() is None, text()[-3000:]
        try:
            web_ok = requests.get(base + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False
        return web_ok and text().count(" ready.") >= 1 and "beat: Starting" in text()

    try:
        wait_for("the stack to start", up, timeout=90)
        worker = celery_main_pid(honcho.pid, "worker")
        beat = celery_main_pid(honcho.pid, "beat")

        os.kill(worker, signal.SIGKILL)
        wait_for(
            "the worker to be started again",
            lambda: honcho.poll() is None and text().count(" ready.") >= 2,
            timeout=60,
        )
        assert f"celery (pid {worker}) exited with -9; restarting" in text()
        assert celery_main_pid(honcho.pid, "worker") != worker
        assert honcho.poll() is None
        assert alive(beat) and celery_main_pid(honcho.pid, "beat") == beat
        assert requests.get(base + "/healthz", timeout=5).status_code == 200

        # The new worker works: a session completed now is scored by it.
        call = http_call(base)
        token = session_answer_all(call, "stacked")
        assert session_complete_http(call, token)[0] == 200
        session_id = session_id_of(token)
        wait_for(
            "the score",
            lambda: Score.objects.filter(session_id=session_id, status="done").exists(),
            timeout=60,
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(honcho.pid, signal.SIGTERM)
        try:
            honcho.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(honcho.pid, signal.SIGKILL)
            honcho.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(honcho.pid, signal.SIGKILL)
