"""No server starts with the public built-in SECRET_KEY: only DEBUG=1 (`make run`) may use it."""

import os
import subprocess
from pathlib import Path

from tests.faults.processes import REPO, free_port
from tests.serving import VENV_BIN, serve_argv

MESSAGE = "SECRET_KEY (or SECRET_KEY_FILE) must be set in production"


def env_without_key(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SECRET_KEY", "SECRET_KEY_FILE", "DEBUG", "PRODUCTION", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}",
        DJANGO_SETTINGS_MODULE="belief_web.settings",
        **extra,
    )
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_manage_py_refuses_without_a_key_unless_debug(tmp_path: Path) -> None:
    python = str(VENV_BIN / "python")
    refused = run([python, "manage.py", "check"], env_without_key(tmp_path))
    assert refused.returncode == 1
    assert MESSAGE in refused.stderr
    assert run([python, "manage.py", "check"], env_without_key(tmp_path, DEBUG="1")).returncode == 0
    given = run([python, "manage.py", "check"], env_without_key(tmp_path, SECRET_KEY="s" * 50))
    assert given.returncode == 0, given.stderr


def test_the_web_server_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    done = run(serve_argv(free_port(), workers=1), env_without_key(tmp_path, PRODUCTION="0"))
    assert done.returncode != 0
    assert MESSAGE in done.stdout + done.stderr
