"""The README's "Get your data in Python" snippet runs as printed, against a live server."""

import re
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
