"""Fixtures of the fault tests: a throw-away PostgreSQL cluster of their own, the browser.

The shared PostgreSQL is never restarted: other people's tests use it. The cluster here is
initialised into a temporary directory owned by the `postgres` user (initdb refuses root),
on a free port, with trust authentication, and removed at the end of the module.
"""

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import need
from tests.e2e.conftest import browser, robot, small_study  # noqa: F401 - fixtures
from tests.faults.processes import REPO, free_port
from tests.serving import VENV_BIN

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class Cluster:
    data: Path
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/bw_fault"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=bw_fault"

    def pg_ctl(self, *args: str) -> float:
        """Run pg_ctl as postgres; returns how long it took."""
        started = time.monotonic()
        as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args])
        return time.monotonic() - started

    def restart(self) -> float:
        return self.pg_ctl("restart", "-m", "fast", *self.start_options())

    def start_options(self) -> list[str]:
        opts = f"-p {self.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off"
        return ["-l", str(self.log), "-o", opts]

    def manage(self, *args: str) -> str:
        """manage.py against this cluster."""
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TEST_REDIS_URL")}
        env.update(DATABASE_URL=self.url, DB_POOL="0", DJANGO_SETTINGS_MODULE="belief_web.settings")
        done = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def as_postgres(argv: list[str]) -> None:
    done = subprocess.run(
        ["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{argv}: {done.stdout}{done.stderr}"


def _have_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


# A Redis database of the fault tests' own on the shared server, flushed before and after.
FAULTS_REDIS_DB = 11


@pytest.fixture(scope="module")
def fault_redis() -> Iterator[str]:
    """A Redis URL for the web processes: cache, throttles, and a broker nobody consumes."""
    import redis

    base = os.environ.get("TEST_REDIS_URL", "")
    need("Redis", bool(base))
    server = base.split("?")[0].rstrip("/")
    head, _, last = server.rpartition("/")
    if last.isdigit() and head.count("/") >= 2:
        server = head
    url = f"{server}/{FAULTS_REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    yield url
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[Cluster]:
    """A migrated PostgreSQL 15 cluster of this module's own (database bw_fault)."""
    need(f"PostgreSQL binaries in {PG_BIN}", (PG_BIN / "initdb").exists())
    need("root and a postgres user (to run initdb)", os.geteuid() == 0 and _have_postgres_user())
    need("runuser", shutil.which("runuser") is not None)
    data = Path(tempfile.mkdtemp(prefix="bw-fault-pg-"))
    shutil.chown(data, "postgres", "postgres")
    cluster = Cluster(data=data / "data", port=free_port(), log=data / "postgres.log")
    try:
        as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres"]
            + ["-E", "UTF8", "--no-sync", "--no-instructions"]
        )
        subprocess.run(["touch", str(cluster.log)], check=True)
        shutil.chown(cluster.log, "postgres", "postgres")
        cluster.pg_ctl("start", *cluster.start_options())
        as_postgres(
            [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(cluster.port), "bw_fault"]
        )
        cluster.manage("migrate", "--no-input")
        yield cluster
    finally:
        if (cluster.data / "postmaster.pid").exists():
            with contextlib.suppress(AssertionError):
                cluster.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(data, ignore_errors=True)
