"""The web server (common.serve) as a subprocess for the fault tests: started, killed and
started again on one port.

Each start runs in its own process group, so a kill takes the server and its workers at once
(as a crash or an OOM kill of the container would). Stopped for sure at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.serving import serve_argv

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class WebServer:
    """`python -m common.serve` on 127.0.0.1:port with the given environment."""

    database_url: str
    log_dir: Path
    redis_url: str = ""
    workers: int = 2
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.log_dir / f"web-{self.port}.log"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TEST_REDIS_URL",)}
        env.update(
            DJANGO_SETTINGS_MODULE="belief_web.settings",
            DATABASE_URL=self.database_url,
            # With a Redis of their own, completions queue their scoring for a worker that
            # these tests do not run; without one, the scoring would run in the request.
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 30) -> float:
        """Start and wait until /healthz answers; returns the seconds that took."""
        started = time.monotonic()
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                serve_argv(self.port, self.workers),
                cwd=REPO,
                env=self.environment(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        while True:
            if self.popen.poll() is not None:
                code = self.popen.returncode
                raise AssertionError(f"the web server exited {code}:\n{self.tail()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code < 600:
                    return time.monotonic() - started
            except requests.RequestException:
                pass
            if time.monotonic() - started > timeout:
                raise AssertionError(f"no answer after {timeout} s:\n{self.tail()}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (server and workers) and reap it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        # Workers left behind by a server process that died first.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
