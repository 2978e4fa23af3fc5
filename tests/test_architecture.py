"""The package map holds (docs/architecture.md): no import circles, apps do not import up.

The import graph is read from the source with ast, every import counted, including the ones
inside functions: a lazy import avoids a circle at import time, not in the design.
"""

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_APPLICATION = {"tests", "bench", "docker", "node_modules", "locale", "static", "templates"}
#: What an app may import from the project package: the Celery app. Settings are read through
#: django.conf, never imported.
BELIEF_WEB_ALLOWED = {"belief_web.celery"}


def application_packages() -> list[str]:
    """Every top-level package of the project (a folder with an __init__.py)."""
    return sorted(
        path.parent.name
        for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_APPLICATION and not path.parent.name.startswith(".")
    )


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the application packages (migrations aside)."""
    found: dict[str, Path] = {}
    for package in application_packages():
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if "migrations" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(name: str, path: Path, known: Iterable[str]) -> set[str]:
    """The project modules `name` imports, anywhere in its body."""
    known = set(known)
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                if f"{base}.{alias.name}" in known:
                    out.add(f"{base}.{alias.name}")
                elif base in known:
                    out.add(base)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(name, path, found) for name, path in found.items()}


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative: a deep chain of imports must not hit the recursion limit.
        work = [(start, iter(graph.get(start, ())))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph.get(target, ()))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def services_and_tasks(component: list[str]) -> bool:
    """A circle of an app's services (module or package) and its tasks: the one allowed.

    The service enqueues the task after commit, the task calls the service: both directions
    are the design (STYLE.md, thin tasks).
    """
    if len(component) != 2:
        return False
    first, second = (name.split(".") for name in component)
    if first[0] != second[0]:
        return False
    roles = {tuple(first[1:2]), tuple(second[1:2])}
    return roles == {("services",), ("tasks",)} and min(len(first), len(second)) == 2


def test_the_circle_finder_finds_circles_and_only_them() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert circles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_only_a_services_tasks_pair_may_form_a_circle() -> None:
    assert services_and_tasks(["scoring.services", "scoring.tasks"])
    assert services_and_tasks(["trials.services.responses", "trials.tasks"])
    assert not services_and_tasks(["scoring.fitting", "scoring.metrics"])
    assert not services_and_tasks(["dashboard.services", "scoring.tasks"])
    assert not services_and_tasks(["a.services", "a.tasks", "a.views"])


def test_the_graph_sees_top_level_relative_and_lazy_imports() -> None:
    graph = import_graph()
    assert "scoring.fitting" in graph["scoring.pipeline"]  # top level
    assert "scoring.pipeline" in graph["scoring.services"]  # inside a function
    assert "accounts.views" in graph["belief_web.urls"]
    assert {"trials", "scoring", "common", "belief_web"} <= set(application_packages())


def test_no_import_circles_other_than_a_services_tasks_pair() -> None:
    bad = [c for c in circles(import_graph()) if not services_and_tasks(c)]
    assert bad == []


def test_no_app_imports_the_project_package_but_for_the_celery_app() -> None:
    graph = import_graph()
    up = {
        (name, target)
        for name, targets in graph.items()
        if not name.startswith("belief_web")
        for target in targets
        if target.split(".")[0] == "belief_web" and target not in BELIEF_WEB_ALLOWED
    }
    assert up == set()


def test_the_shared_helpers_import_no_app() -> None:
    graph = import_graph()
    reaching = {
        (name, target)
        for name, targets in graph.items()
        if name.split(".")[0] == "common"
        for target in targets
        if target.split(".")[0] != "common"
    }
    assert reaching == set()
