"""The tree is lint-clean and the application packages type-check (STYLE.md, Tooling)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
APP_PACKAGES = [
    "belief_web",
    "common",
    "trials",
    "scoring",
    "dashboard",
    "accounts",
    "audit",
    "reminders",
    "instruments",
    "protocol",
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)


def test_ruff_check() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_application_packages() -> None:
    # Strict on the pure science modules (pyproject.toml), django-stubs on the rest.
    result = run(str(BIN / "mypy"), *APP_PACKAGES)
    assert result.returncode == 0, result.stdout + result.stderr
