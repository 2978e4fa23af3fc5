"""The production web server's command (`python -m common.serve`, granian), as tests start it.

Run from the repository's root (cwd) with the test's environment; it listens on
127.0.0.1:port. One command for every test that needs a real web server, so they all test
what the Procfile, the Dockerfile and the Compose file run.
"""

from pathlib import Path

VENV_BIN = Path(__file__).resolve().parents[1] / ".venv" / "bin"


def serve_argv(port: int, workers: int = 2) -> list[str]:
    return [
        str(VENV_BIN / "python"),
        "-m",
        "common.serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
