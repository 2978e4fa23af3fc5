"""The README's "Get your data in Python" snippet runs as printed, against a live server."""

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import fill_study, make_researchers, score_fixed
from tests.factories import make_study

README = Path(__file__).resolve().parents[2] / "README.md"


def _python_snippet() -> str:
    text = README.read_text()
    section = text.split("## Get your data in Python", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.django_db(transaction=True)
def test_python_snippet_runs(live_server: Any, capsys: Any) -> None:
    study = make_study(slug="demo", n_events=6)
    score_fixed(fill_study(study, n_participants=4))
    people = make_researchers(study, make_study(slug="elsewhere"))
    code = _python_snippet()
    assert "http://127.0.0.1:8000" in code and "PASTE-YOUR-TOKEN-HERE" in code
    code = code.replace("http://127.0.0.1:8000", live_server.url).replace(
        "PASTE-YOUR-TOKEN-HERE", people.tokens["owner_read"]
    )
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    assert len(namespace["trials"]) == 8 * 7
    assert set(namespace["scores"]["arm"]) == {"patients"}
    assert list(namespace["codebook"].columns) == ["table", "name", "type", "unit", "meaning"]
    assert namespace["summary"]["n_sessions"] == 8
    assert "update_bias" not in capsys.readouterr().err


def test_readme_commands_work_as_written() -> None:
    """Every command the README gives runs from the checkout: the venv's python, real commands."""
    text = README.read_text()
    # A bare `python manage.py` needs an activated venv; only the image's python is bare.
    for line in text.splitlines():
        if "python manage.py" in line and "docker compose run" not in line:
            assert ".venv/bin/python manage.py" in line, line
    named = set(re.findall(r"(?:\.venv/bin/)?python manage\.py ([a-z_]+)", text))
    assert named == {
        "load_demo",
        "import_event_list",
        "rescore",
        "verify_audit_log",
        "create_api_token",
        "createsuperuser",
    }
    python = README.parent / ".venv" / "bin" / "python"
    for command in sorted(named):
        done = subprocess.run(  # noqa: S603
            [str(python), "manage.py", command, "--help"],
            cwd=README.parent,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (command, done.stderr)
        assert f"manage.py {command}" in done.stdout
    assert "python -m scoring" not in text.replace(".venv/bin/python -m scoring", "")
    done = subprocess.run(  # noqa: S603
        [str(python), "-m", "scoring", "--help"], cwd=README.parent, capture_output=True, text=True
    )
    assert done.returncode == 0 and "score" in done.stdout, done.stderr


@pytest.mark.django_db
def test_readme_first_login_is_what_a_new_researcher_sees(client: Any) -> None:
    """The README's account of a first login quotes the pages as they are."""
    from django.contrib.auth.models import User

    section = README.read_text().split("## Researcher accounts (production)", 1)[1]
    quoted = ["Researchers: log in", "You are not a member of any study yet", "New study"]
    assert all(text in section for text in quoted)
    login = client.get("/dashboard/", follow=True)
    assert login.redirect_chain[-1][0].startswith("/accounts/login/")
    assert quoted[0] in login.content.decode()
    User.objects.create_user("alice", password="a-long-password-1")
    client.post("/accounts/login/", {"username": "alice", "password": "a-long-password-1"})
    page = client.get("/dashboard/").content.decode()
    assert quoted[1] in page and quoted[2] in page
