"""The phase names are declared once, in protocol/phases.py: no other module spells a list.

What counts as a copy of the vocabulary:
- Python: a tuple, list or set literal, or a dict's keys, with two or more phase names; a
  string (an SQL column list, say) that names two or more phases as words;
- JavaScript and templates: any quoted phase name. The browser holds no phase names: the
  session state tells it the kind of each step (DESIGN.md, the session state).

One phase named alone is not a list (the base-rate screen's own check, a formula reading
the column "memory"). E1, BR and E2 together are not a copy either: they are the variables
of the protocol's formulas (PROTOCOL.md, "Scoring one session": EE = |E1 - BR|, the update
from E1 to E2), written as formulas write their variables, and a new phase changes none of
them. Any other phase next to another one is a list that a new phase would have to join.

Not scanned, with the reason:
- protocol/: the declaration itself;
- tests/: tests spell the values they expect, exactly (STYLE.md), golden files included;
- */migrations/: history; each migration freezes the choices of its day;
- locale/, docs/ and *.md: prose and translations, not code.
"""

import ast
import re
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from protocol.phases import NAMES, PHASES

ROOT = Path(__file__).resolve().parents[2]
FORMULA = frozenset(p.name for p in PHASES if p.required)  # e1, br, e2
NOT_SCANNED = ("protocol/", "tests/", "locale/", "docs/")
_WORD = re.compile(r"\b(" + "|".join(sorted(NAMES, key=len, reverse=True)) + r")\b")
_QUOTED = re.compile(r"""(["'`])(""" + "|".join(NAMES) + r""")\1""")


def _is_copy(names: set[str]) -> bool:
    return len(names) >= 2 and not names <= FORMULA


def _tracked(suffixes: tuple[str, ...]) -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [
        ROOT / name
        for name in out
        if name.endswith(suffixes)
        and not name.startswith(NOT_SCANNED)
        and "/migrations/" not in name
        and not name.startswith("static/vendor/")
        and (ROOT / name).is_file()
    ]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring nodes: prose, like comments."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _names_in(elements: Iterable[ast.expr | None]) -> set[str]:
    return {
        e.value
        for e in elements
        if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value in NAMES
    }


def python_copies(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) for every list of phase names in a Python module's code."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # read whole, below
            skip.update(id(v) for v in node.values)
    for node in ast.walk(tree):
        names: set[str] = set()
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            names = _names_in(node.elts)
        elif isinstance(node, ast.Dict):
            names = _names_in(node.keys)
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                v.value
                for v in node.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
            names = set(_WORD.findall(text))
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
        ):
            names = set(_WORD.findall(node.value))
        if _is_copy(names):
            yield node.lineno, ", ".join(sorted(names))


def browser_copies(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) for every quoted phase name in a script or a template."""
    for number, line in enumerate(source.splitlines(), start=1):
        for match in _QUOTED.finditer(line):
            yield number, match.group(2)


def test_no_module_but_the_declaration_lists_the_phases() -> None:
    found = []
    for path in _tracked((".py",)):
        for line, what in python_copies(path.read_text()):
            found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    for path in _tracked((".js", ".html", ".sql")):
        for line, what in browser_copies(path.read_text()):
            found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert found == [], "read protocol/phases.py instead of spelling the phases:\n" + "\n".join(
        found
    )


def test_the_check_finds_each_kind_of_copy() -> None:
    copies = """
RATINGS = ("vividness", "familiarity", "experience")
ROW = {"e1": 1, "memory": 2}
SQL = "SELECT r.e1 AS e1, r.ebr1 AS ebr1 FROM responses r"
PIVOT = f"MAX(CASE WHEN phase = 'confidence' THEN {x} END) AS confidence, e2"
"""
    assert [line for line, _ in python_copies(copies)] == [2, 3, 4, 5]
    fine = '''
"""A docstring may say e1, ebr1 and memory."""
REQUIRED = ("session", "event", "e1", "br", "e2")
UPDATE = "CASE WHEN t.br < r.e1 THEN r.e1 - r.e2 END"
GAP = frame["memory"] - frame["br"]
KEYS = ("confidence_prompt", "rt_e1_ms", "rt_e2_ms")
'''
    assert list(python_copies(fine)) == []
    script = 'var P = ["e1", "br"];\nif (step.kind === "rating") t(phase + "_prompt");\n'
    assert list(browser_copies(script)) == [(1, "e1"), (1, "br")]
