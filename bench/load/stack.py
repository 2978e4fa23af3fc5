"""The stack under test: a scratch PostgreSQL database, gunicorn, a Celery worker, Redis.

Every process is started in its own process group and stopped by its pid at the end,
also on Ctrl-C or an error; the scratch database is dropped, the Redis db flushed.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from bench.load.loadgen import children_of

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database_recreate(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_claim(url: str) -> None:
    """Refuse a Redis db that holds keys: another engineer's queue must not be flushed."""
    import redis

    keys = redis.Redis.from_url(url).dbsize()
    if keys:
        raise RuntimeError(f"{url} holds {keys} keys (someone else's?): pick --redis-db")


def redis_flush(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


class Stack:
    """The web server and a Celery worker on the bench settings; restartable with others."""

    def __init__(self, *, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.port = port
        self.env = env
        self.log_dir = log_dir
        self.web: subprocess.Popen[bytes] | None = None
        self.server = "granian"
        self.worker: subprocess.Popen[bytes] | None = None

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def web_start(
        self,
        *,
        workers: int,
        extra_env: dict[str, str] | None = None,
        threads: int = 0,
        server: str = "granian",
    ) -> None:
        """The web server on the bench's WSGI app (production's plus the bare ceiling).

        server "sync": gunicorn with `workers` sync workers (a connection per request);
        "gthread": gunicorn gthread workers of `threads` threads each, keep-alive 5 s;
        "granian": production's server (`python -m common.serve`: granian's WSGI interface),
        `workers` processes of `threads` threads each, HTTP/1.1 keep-alive (a client's next
        request skips the TCP connect). The app is `bench.load.wsgi:application` in every case.
        """
        self.web_stop()
        env = {**self.env, **(extra_env or {})}
        self.server = server
        app = "bench.load.wsgi:application"
        if server == "granian":  # production's command (common.serve) on the bench's app
            argv = [
                str(VENV_BIN / "python"),
                "-m",
                "common.serve",
                "--app",
                app,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
            ]
        else:
            argv = [
                str(VENV_BIN / "gunicorn"),
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                *(
                    ["--worker-class", "gthread", "--threads", str(threads), "--keep-alive", "5"]
                    if server == "gthread"
                    else ["--worker-class", "sync"]
                ),
                "--backlog",
                "2048",
                "--log-level",
                "warning",
                # Booting a worker took over gunicorn's default 30 s on the loaded machine.
                "--timeout",
                "120",
            ]
        self.web = self._spawn(server, argv, env)
        self._wait_ready()

    def web_pids(self) -> list[int]:
        """The processes that serve requests: gunicorn's or granian's workers."""
        if self.web is None:
            return []
        return children_of(self.web.pid)

    def worker_start(self, *, concurrency: int) -> None:
        self.worker = self._spawn(
            "celery",
            [
                str(VENV_BIN / "celery"),
                "-A",
                "belief_web",
                "worker",
                "--loglevel=WARNING",
                "--concurrency",
                str(concurrency),
                "--prefetch-multiplier",
                "1",
                "--without-gossip",
                "--without-mingle",
            ],
            self.env,
        )

    def _wait_ready(self, timeout: float = 240.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.web is not None
            if self.web.poll() is not None:
                raise RuntimeError(f"the web server exited; see {self.log_dir}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                    if s.recv(16).startswith(b"HTTP/1.1"):
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("the web server did not answer in time")

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the group we created for this process
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def web_stop(self) -> None:
        self._stop(self.web)
        self.web = None

    def stop(self) -> None:
        self.web_stop()
        self._stop(self.worker)
        self.worker = None
