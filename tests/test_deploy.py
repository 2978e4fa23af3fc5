"""The deployment files: what can be proven without a Docker engine.

No image is built here. Instead: the compose file is validated against the Compose
Specification (offline) and its defaults are interpolated and checked against each other;
every command the compose file, the Dockerfile, the Procfile and the Makefile run is resolved
and its arguments parsed; the image's file layout is rebuilt from the Dockerfile's COPY lines
and .dockerignore and collectstatic runs in it as in the build; the production settings pass
`check --deploy`; and the stack's own commands (migrate, the web server, Celery worker and beat,
both health checks) run against Redis as `docker compose up` would start them.
"""

import http.client
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands, load_command_class
from django.test import Client

from tests.conftest import need
from tests.factories import make_study

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # .venv/bin: make test runs the suite with .venv/bin/python
COMPOSE_FILE = ROOT / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker", "beat")

# The policy of common/csp.py, spelt out here so that a change to it is a visible decision.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


# --- reading the files ------------------------------------------------------------------


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-x}, ${VAR-x}, ${VAR:?x},
    ${VAR:+x}, nested defaults, and $$ for a literal dollar."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            depth, j = 0, i + 1
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    break
                j += 1
            else:
                raise ValueError(f"unclosed ${{ in {text!r}")
            out.append(_expand(text[i + 2 : j], env))
            i = j + 1
        else:
            name = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[i + 1 :])
            if name:
                out.append(env.get(name.group(), ""))
                i += 1 + name.end()
            else:
                out.append("$")
                i += 1
    return "".join(out)


def _expand(expression: str, env: Mapping[str, str]) -> str:
    match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", expression, re.S)
    assert match, f"not a Compose variable expression: ${{{expression}}}"
    name, operator, argument = match.groups()
    value = env.get(name)
    if operator is None:
        return value or ""
    is_set = bool(value) if operator.startswith(":") else value is not None
    if operator.endswith("-"):
        return value if is_set and value is not None else interpolate(argument, env)
    if operator.endswith("+"):
        return interpolate(argument, env) if is_set else ""
    if not is_set:
        raise ValueError(f"{name} is required: {argument}")
    return value or ""


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The compose file as `docker compose config` sees it (anchors merged), interpolated
    with env (nothing set: the defaults) unless env is None."""
    raw: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return raw if env is None else dict(interpolated(raw, env))


def argv(command: str | list[str]) -> list[str]:
    """A compose `command` as the argv the container gets (a string is split like a shell)."""
    return shlex.split(command) if isinstance(command, str) else list(command)


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The arguments of an exec-form (JSON array) or shell-form instruction as a list."""
        return json.loads(self.args) if self.args.startswith("[") else shlex.split(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    @property
    def workdir(self) -> str:
        workdirs = self.all("WORKDIR")
        return workdirs[-1].args if workdirs else "/"


def dockerfile() -> list[Stage]:
    """The Dockerfile's stages: continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        else:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


@dataclass
class Copy:
    source_stage: str | None
    sources: list[str]
    dest: str


def copies(stage: Stage) -> list[Copy]:
    result = []
    for instruction in stage.all("COPY"):
        words = instruction.exec_form()
        flags = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        result.append(Copy(flags.get("from"), paths[:-1], paths[-1]))
    return result


def under(path: str, directory: str) -> str | None:
    """path relative to directory, or None when it is not inside it."""
    relative = os.path.relpath(os.path.normpath(path), os.path.normpath(directory))
    return None if relative == ".." or relative.startswith("../") else relative


def dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        glob = line.lstrip("!").strip().strip("/")
        regex, i = "", 0
        while i < len(glob):
            if glob.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif glob.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif glob[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif glob[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif glob[i] == "[":
                end = glob.index("]", i)
                regex, i = regex + glob[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(glob[i]), i + 1
        patterns.append((negate, re.compile(regex + "$")))
    return patterns


def ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: a pattern that matches a path or one of its parents excludes it; the
    last matching pattern wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    result = False
    for negate, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            result = not negate
    return result


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def clean_env(**extra: str) -> dict[str, str]:
    """A process environment with none of the test run's settings (DATABASE_URL, ...)."""
    env = {
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    # Set on some processors so that OpenBLAS neither crashes nor computes wrong results.
    env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})
    env.update(extra)
    return env


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    production = {
        "PRODUCTION": "1",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "example.org",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
    }
    return clean_env(**{**production, **extra})


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", ROOT)
    kwargs.setdefault("timeout", 180)
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- docker-compose.yml --------------------------------------------------------------------


def offline(args: list[str]) -> list[str]:
    """args in a network namespace of their own (no network at all) where that is possible."""
    root = os.geteuid() == 0 and shutil.which("unshare") is not None
    if root and run(["unshare", "--net", "true"], timeout=30).returncode == 0:
        return ["unshare", "--net", *args]
    return args


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    # A dead proxy too: where unshare is not available, any download attempt still fails.
    env = clean_env(HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9")
    args = [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
    return run(offline(args), env=env)


def test_compose_file_is_valid_against_the_compose_specification_offline() -> None:
    result = check_compose_schema(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_compose_file_is_valid_once_interpolated(tmp_path: Path) -> None:
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(compose({})), encoding="utf-8")
    result = check_compose_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_check_rejects_an_unknown_key(tmp_path: Path) -> None:
    """Negative control: the validation above can fail."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    bad = text.replace("\n  web:\n", "\n  web:\n    restarts: always\n", 1)
    assert bad != text
    path = tmp_path / "docker-compose.yml"
    path.write_text(bad, encoding="utf-8")
    result = check_compose_schema(path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "'restarts' was unexpected" in result.stdout


def test_compose_services_health_checks_and_start_order() -> None:
    spec = compose({})
    assert "version" not in spec  # obsolete in the Compose Specification
    services = spec["services"]
    assert set(services) == {"db", "redis", *APP_SERVICES}

    assert services["db"]["image"] == "postgres:15"
    assert services["db"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert services["db"]["healthcheck"]["test"][1].startswith("pg_isready ")
    assert services["db"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert services["redis"]["image"] == "redis:7"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert {"pgdata", "redisdata", "appdata"} <= set(spec["volumes"])

    # One image for all four: built once from this directory.
    builds = {(services[s]["build"], services[s]["image"]) for s in APP_SERVICES}
    assert builds == {(".", "belief-web:latest")}

    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"db": {"condition": "service_healthy"}}
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"] == {
            "db": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
        assert services[name]["restart"] == "unless-stopped"

    web = services["web"]
    assert argv(web["command"])[:7] == [
        "python", "-m", "common.serve", "--host", "0.0.0.0", "--port", "8000",  # noqa: S104
    ]  # fmt: skip
    # Published on loopback only: the app trusts X-Forwarded-Proto, so only a proxy may reach it.
    assert web["ports"] == ["127.0.0.1:8000:8000"]
    assert web["healthcheck"]["test"] == [
        "CMD",
        "python",
        "/app/docker/healthcheck.py",
        "http://127.0.0.1:8000/healthz",
    ]
    assert argv(services["worker"]["command"]) == [
        "celery", "-A", "belief_web", "worker", "--loglevel=INFO", "--concurrency=2",
        "--prefetch-multiplier=1",
    ]  # fmt: skip
    assert services["worker"]["healthcheck"]["test"][0] == "CMD-SHELL"
    assert argv(services["beat"]["command"]) == [
        "celery", "-A", "belief_web", "beat", "--loglevel=INFO",
        "--schedule", "/tmp/celerybeat-schedule",  # noqa: S108 - in the container
    ]  # fmt: skip
    # The image's /healthz probe means nothing in a container that serves no HTTP.
    assert services["beat"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["healthcheck"] == {"disable": True}


def test_compose_defaults_fit_together() -> None:
    """With nothing set, the app's URLs point at the db and redis services and their
    credentials; overriding the password changes both sides."""
    for env, password in (({}, "belief-web-lab"), ({"POSTGRES_PASSWORD": "s3cret-x"}, "s3cret-x")):
        services = compose(env)["services"]
        db_env = services["db"]["environment"]
        for name in APP_SERVICES:
            app_env = services[name]["environment"]
            database = dj_database_url.parse(app_env["DATABASE_URL"])
            assert database["ENGINE"] == "django.db.backends.postgresql"
            assert (database["HOST"], database["PORT"]) == ("db", 5432)
            assert database["NAME"] == db_env["POSTGRES_DB"]
            assert database["USER"] == db_env["POSTGRES_USER"]
            assert database["PASSWORD"] == db_env["POSTGRES_PASSWORD"] == password
            assert urlsplit(app_env["REDIS_URL"]).hostname == "redis"
            assert app_env["PRODUCTION"] == "1"
            assert app_env["DEBUG"] == "0"
            assert app_env["ALLOWED_HOSTS"] == "localhost,127.0.0.1"
            # No key in the file: docker/entrypoint.py generates one into the appdata volume.
            assert app_env["SECRET_KEY"] == app_env["SECRET_KEY_FILE"] == ""
            assert "appdata:/var/lib/belief-web" in services[name]["volumes"]

    web = compose({"ALLOWED_HOSTS": "study.example.org", "WEB_PORT": "8080"})["services"]["web"]
    assert web["environment"]["ALLOWED_HOSTS"] == "study.example.org"
    assert web["ports"] == ["127.0.0.1:8080:8000"]


# --- every command exists -----------------------------------------------------------------


def all_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command that runs in the image or from the Procfile."""
    found: list[tuple[str, list[str]]] = []
    for name, service in compose({}).get("services", {}).items():
        if name not in APP_SERVICES:
            continue  # db and redis run their own images' tools
        found.append((f"compose {name}", argv(service["command"])))
        test = service.get("healthcheck", {}).get("test")
        if test and test[0] == "CMD":
            found.append((f"compose {name} healthcheck", test[1:]))
        elif test and test[0] == "CMD-SHELL":
            found.append((f"compose {name} healthcheck", shlex.split(test[1])))
    final = dockerfile()[-1]
    for keyword in ("ENTRYPOINT", "CMD"):
        found.append((f"Dockerfile {keyword}", final.all(keyword)[-1].exec_form()))
    healthcheck = final.all("HEALTHCHECK")[-1].args
    found.append(("Dockerfile HEALTHCHECK", json.loads(healthcheck[healthcheck.index("[") :])))
    for name, command in procfile().items():
        found.append((f"Procfile {name}", shlex.split(interpolate(command, {}))))
    return found


def test_every_executable_the_stack_runs_is_installed() -> None:
    commands = all_commands()
    executables = {args[0] for _, args in commands}
    assert executables == {"python", "celery"}, commands
    for executable in executables:
        assert (BIN / executable).is_file() and os.access(BIN / executable, os.X_OK), executable
    # Scripts that the image runs by path exist at that path (WORKDIR /app is this folder).
    for where, args in commands:
        for arg in args:
            if arg.startswith("/app/"):
                assert (ROOT / arg.removeprefix("/app/")).is_file(), (where, arg)


def manage_py_uses() -> list[tuple[str, list[str]]]:
    uses: list[tuple[str, list[str]]] = []

    def collect(where: str, args: list[str]) -> None:
        if "manage.py" in args:
            uses.append((where, args[args.index("manage.py") + 1 :]))

    for where, args in all_commands():
        collect(where, args)
    for instruction in dockerfile()[-1].all("RUN"):
        collect("Dockerfile RUN", shlex.split(instruction.args))
    for line in (ROOT / "Makefile").read_text(encoding="utf-8").splitlines():
        if "manage.py" in line:
            line = re.sub(r"\$\((\w+)\)", lambda m: "8000" if m[1] == "PORT" else m[1], line)
            collect("Makefile", shlex.split(line))
    return uses


def test_every_manage_py_command_exists_and_accepts_its_arguments() -> None:
    uses = manage_py_uses()
    names = {args[0] for _, args in uses}
    assert {"migrate", "collectstatic"} <= names
    commands = get_commands()
    for where, args in uses:
        name, options = args[0], args[1:]
        assert name in commands, f"{where}: manage.py {name} does not exist"
        app = commands[name]
        command = app if not isinstance(app, str) else load_command_class(app, name)
        # Raises CommandError on an unknown option or a bad value.
        command.create_parser("manage.py", name).parse_args(options)


CELERY_REPORT = """
import json
from celery.app.utils import find_app
app = find_app("belief_web")  # what `celery -A belief_web` loads
app.loader.import_default_modules()  # what the worker does at start: autodiscovery
print(json.dumps({
    "tasks": sorted(app.tasks),
    "beat": {
        name: entry.get("task") if isinstance(entry, dict) else None
        for name, entry in app.conf.beat_schedule.items()
    },
    "broker": app.conf.broker_url,
    # The limits as apply_async sees them: the task's own, else the settings'.
    "limits": {
        name: [task.soft_time_limit, task.time_limit]
        for name, task in app.tasks.items() if not name.startswith("celery.")
    },
}))
"""


def test_celery_app_resolves_and_registers_the_tasks_and_the_beat_schedule(
    tmp_path: Path,
) -> None:
    env = production_env(tmp_path, REDIS_URL="redis://redis.invalid:6379/0")
    result = run([str(BIN / "python"), "-c", CELERY_REPORT], env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    tasks = set(report["tasks"])
    assert {"scoring.score_session", "scoring.score_batch", "scoring.sweep_unscored"} <= tasks
    malformed = [name for name, task in report["beat"].items() if not task]
    assert malformed == [], "CELERY_BEAT_SCHEDULE entries without a task: beat will not start"
    assert report["beat"]["sweep-unscored-sessions"] == "scoring.sweep_unscored"
    assert {"reminders.sweep", "reminders.send"} <= tasks
    assert report["beat"]["sweep-reminders"] == "reminders.sweep"
    assert set(report["beat"].values()) <= tasks, "a beat entry names no registered task"
    assert report["broker"] == "redis://redis.invalid:6379/0"
    # Celery refuses to send a task whose soft limit exceeds its hard one ("soft_time_limit
    # must be less than or equal to time_limit"): beat could never send it, nor .delay().
    unsendable = {
        name: {"soft_time_limit": soft, "time_limit": hard}
        for name, (soft, hard) in report["limits"].items()
        if soft and hard and soft > hard
    }
    assert unsendable == {}, "CELERY_TASK_SOFT_TIME_LIMIT applies where a task sets no soft limit"


def web_commands() -> list[tuple[str, list[str]]]:
    found = [(where, args) for where, args in all_commands() if args[1:3] == ["-m", "common.serve"]]
    assert {where for where, _ in found} == {"compose web", "Dockerfile CMD", "Procfile web"}
    return found


@pytest.mark.parametrize("where", ["compose web", "Dockerfile CMD", "Procfile web"])
def test_the_web_command_loads_the_app(where: str, tmp_path: Path) -> None:
    args = dict(web_commands())[where]
    result = run([str(BIN / "python"), *args[1:], "--check"], env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    host, port = args[args.index("--host") + 1], args[args.index("--port") + 1]
    assert result.stdout.splitlines()[-1] == (
        f"common.serve: the application loads; would serve {host}:{port}"
    )


def test_the_web_command_check_fails_on_a_broken_app(tmp_path: Path) -> None:
    """Negative control: --check does load the application (here, with no such URLconf)."""
    env = production_env(tmp_path) | {"DJANGO_SETTINGS_MODULE": "belief_web.no_such_module"}
    result = run([str(BIN / "python"), "-m", "common.serve", "--check"], env=env)
    assert result.returncode != 0
    assert "No module named 'belief_web.no_such_module'" in result.stderr


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_builds_the_front_end_from_the_lock_file() -> None:
    stages = dockerfile()
    node = stages[0]
    assert node.base == "node:20-slim" and node.name
    sources = [c.sources for c in copies(node)]
    assert sources == [["package.json", "package-lock.json"]]
    runs = [i.args for i in node.all("RUN")]
    assert runs and runs[0].startswith("npm ci ")
    assert stages[-1].base == "python:3.11-slim"


def test_dockerfile_installs_the_pinned_python_dependencies() -> None:
    final = dockerfile()[-1]
    order = [(i.keyword, i.args) for i in final.instructions]
    install = order.index(("RUN", "pip install ."))
    assert ("COPY", "pyproject.toml ./") in order[:install]
    assert all(re.search(r"==\S", d) for d in project_dependencies()), "unpinned dependency"


def project_dependencies() -> list[str]:
    import tomllib

    with (ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def test_dockerfile_runs_as_a_non_root_user() -> None:
    final = dockerfile()[-1]
    keywords = [i.keyword for i in final.instructions]
    users = final.all("USER")
    assert users, "no USER in the final stage"
    assert users[-1].args == "10001:10001"
    assert keywords.index("USER") < keywords.index("CMD")
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    created = [i.args for i in final.all("RUN") if "useradd" in i.args]
    assert created and "--uid 10001" in created[0] and "--gid 10001" in created[0]
    # Nothing after USER may need root.
    after = final.instructions[keywords.index("USER") :]
    assert not [i for i in after if i.keyword == "RUN"]


def test_dockerfile_health_check_exposed_port_and_command() -> None:
    final = dockerfile()[-1]
    healthcheck = final.all("HEALTHCHECK")[-1].args
    options, command = healthcheck.split(" CMD ", 1)
    assert json.loads(command) == [
        "python",
        "/app/docker/healthcheck.py",
        "http://127.0.0.1:8000/healthz",
    ]
    assert "--timeout=10s" in options.split()
    assert [i.args for i in final.all("EXPOSE")] == ["8000"]
    assert final.all("CMD")[-1].exec_form() == [
        "python", "-m", "common.serve", "--host", "0.0.0.0", "--port", "8000",  # noqa: S104
        "--workers", "2", "--threads", "2",
    ]  # fmt: skip
    assert final.all("ENTRYPOINT")[-1].exec_form() == ["python", "/app/docker/entrypoint.py"]
    assert final.workdir == "/app"


def test_dockerfile_collects_static_files_in_production_mode() -> None:
    final = dockerfile()[-1]
    collect = [i.args for i in final.all("RUN") if "collectstatic" in i.args]
    assert len(collect) == 1
    words = shlex.split(collect[0])
    assert "PRODUCTION=1" in words
    assert 'SECRET_KEY="$COLLECTSTATIC_SECRET_KEY"' in collect[0]
    assert [a.args.split("=")[0] for a in final.all("ARG")] == ["COLLECTSTATIC_SECRET_KEY"]


def node_static_dirs() -> dict[str, str]:
    """settings.STATICFILES_DIRS served from node_modules: prefix -> path relative to ROOT."""
    found = {}
    for entry in settings.STATICFILES_DIRS:
        prefix, path = entry if isinstance(entry, tuple) else ("", entry)
        relative = under(str(path), str(ROOT))
        if relative and relative.split("/")[0] == "node_modules":
            found[prefix] = relative
    return found


def test_every_static_dir_from_node_modules_is_copied_into_the_image() -> None:
    static_dirs = node_static_dirs()
    # settings drops missing folders, so an empty node_modules would make this test vacuous.
    assert {"vendor/jspsych", "vendor/vega", "vendor/vega-lite", "vendor/vega-embed"} <= set(
        static_dirs
    ), f"run `npm ci` first: {static_dirs}"
    stages = dockerfile()
    node, final = stages[0], stages[-1]
    copied = []
    for copy in copies(final):
        if copy.source_stage == node.name:
            (source,) = copy.sources
            copied.append((under(source, node.workdir), copy.dest))
    for prefix, path in static_dirs.items():
        # Same relative path in the image, so settings finds it there too.
        assert any(source == dest and under(path, dest) is not None for source, dest in copied), (
            f"{prefix}: {path} is not copied from the {node.name} stage"
        )


def test_dockerignore_keeps_what_the_image_needs_and_drops_the_rest() -> None:
    patterns = dockerignore()
    for needed in (
        "pyproject.toml", "package.json", "package-lock.json", "manage.py",
        "belief_web/settings.py", "common/csp.py", "docker/entrypoint.py",
        "docker/healthcheck.py", "templates/base.html", "static/css/site.css",
        "trials/models.py", "scoring/tasks.py", "locale/fr/LC_MESSAGES/django.po",
        "protocol/phases.py",
    ):  # fmt: skip
        assert not ignored(needed, patterns), needed
    for dropped in (
        ".venv/bin/python", "node_modules/vega/build/vega.js", ".git/HEAD", "db.sqlite3",
        "test-db.sqlite3", ".env", "staticfiles/staticfiles.json", "tests/test_deploy.py",
        "trials/__pycache__/models.cpython-311.pyc",
    ):  # fmt: skip
        assert ignored(dropped, patterns), dropped


def simulated_image(app: Path) -> Stage:
    """Lay out /app as the final stage's COPY lines would, from this work tree."""
    stages = dockerfile()
    by_name = {s.name: s for s in stages if s.name}
    final = stages[-1]
    patterns = dockerignore()
    for copy in copies(final):
        dest = app / copy.dest
        for source in copy.sources:
            if copy.source_stage is None:
                origin = ROOT / source
            else:
                # Stages build from the same files (npm ci of the same lock, msgfmt of the same
                # .po files), which lie at the same relative paths in this tree.
                stage = by_name[copy.source_stage]
                relative = under(source, stage.workdir)
                assert relative is not None, source
                origin = ROOT / relative
                if not origin.exists():
                    # git keeps no empty folder; the stage must then make it itself.
                    made = [i for i in stage.all("RUN") if f"mkdir -p {relative}" in i.args]
                    assert made, f"{source} exists neither in this tree nor in {stage.name}"
                    origin = app.parent / "empty" / relative
                    origin.mkdir(parents=True)
            if origin.is_dir():
                copy_tree(origin, dest, patterns if copy.source_stage is None else None)
            else:
                target = dest / origin.name if copy.dest.endswith("/") else dest
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
    return final


def copy_tree(
    origin: Path, dest: Path, patterns: list[tuple[bool, re.Pattern[str]]] | None
) -> None:
    """Copy a folder; with patterns, the folder is in the build context (this tree)."""
    for directory, subdirs, files in os.walk(origin):
        relative_dir = Path(directory).relative_to(origin)

        def keep(name: str, directory: str = directory) -> bool:
            if patterns is None:
                return True
            return not ignored((Path(directory).relative_to(ROOT) / name).as_posix(), patterns)

        subdirs[:] = [d for d in subdirs if keep(d)]
        for name in files:
            if keep(name):
                target = dest / relative_dir / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(directory) / name, target)


STATIC_PREFIXES = """
import json, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")
from django.conf import settings
print(json.dumps(sorted(d[0] for d in settings.STATICFILES_DIRS if isinstance(d, tuple))))
"""


@dataclass
class Image:
    app: Path
    build_env: dict[str, str]
    collectstatic: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """/app laid out from the Dockerfile's COPY lines, then its collectstatic step run."""
    app = tmp_path_factory.mktemp("image") / "app"
    final = simulated_image(app)
    (collect,) = [i.args for i in final.all("RUN") if "collectstatic" in i.args]
    arg_defaults = dict(a.args.split("=", 1) for a in final.all("ARG"))
    words = shlex.split(interpolate(collect, arg_defaults))
    assignments = dict(w.split("=", 1) for w in words[: words.index("python")])
    command = words[words.index("python") :]
    env = clean_env(**assignments)
    result = run([str(BIN / "python"), *command[1:]], cwd=app, env=env)
    return Image(app, env, result)


def test_image_layout_collects_every_static_file(image: Image) -> None:
    """In the image's layout, the copied node_modules subsets give settings every vendor
    folder that this tree has, and the manifest storage finds every file that those
    reference (source maps included)."""
    app, env, result = image.app, image.build_env, image.collectstatic
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (app / "node_modules" / ".package-lock.json").exists()  # subsets only
    assert not (app / "tests").exists() and not (app / ".venv").exists()
    assert (app / "docker" / "entrypoint.py").is_file()

    prefixes = run([str(BIN / "python"), "-c", STATIC_PREFIXES], cwd=app, env=env)
    assert prefixes.returncode == 0, prefixes.stderr
    in_tree = sorted(d[0] for d in settings.STATICFILES_DIRS if isinstance(d, tuple))
    assert json.loads(prefixes.stdout) == in_tree

    manifest = json.loads((app / "staticfiles" / "staticfiles.json").read_text())["paths"]
    for prefix in in_tree:
        assert any(name.startswith(prefix + "/") for name in manifest), prefix
    assert "css/site.css" in manifest


def test_translations_compile_as_in_the_image_build() -> None:
    """The messages stage runs `msgfmt --check-format` on every .po file."""
    need("msgfmt (Debian package gettext)", shutil.which("msgfmt") is not None)
    for po in sorted((ROOT / "locale").rglob("*.po")):
        result = run(["msgfmt", "--check-format", "-o", os.devnull, str(po)])
        assert result.returncode == 0, f"{po}: {result.stderr}"


# --- production settings --------------------------------------------------------------------


def test_check_deploy_is_clean_with_the_production_environment(tmp_path: Path) -> None:
    args = [str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = run(args, env=production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_without_production_mode(tmp_path: Path) -> None:
    """Negative control: the deploy checks do look at the hardening PRODUCTION=1 switches on."""
    env = production_env(tmp_path, PRODUCTION="0")
    args = [str(BIN / "python"), "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    result = run(args, env=env)
    assert result.returncode == 1
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, warning


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = run([str(BIN / "python"), "manage.py", "check"], env=env)
    assert result.returncode == 1
    assert "SECRET_KEY (or SECRET_KEY_FILE) must be set in production" in result.stderr


# --- Content-Security-Policy ----------------------------------------------------------------


def script_tags(html: str) -> list[tuple[str, str]]:
    """(attributes, body) of every <script> element."""
    return re.findall(r"<script\b([^>]*)>(.*?)</script\s*>", html, flags=re.S | re.I)


def assert_no_inline_code(html: str, where: str, styles: bool = True) -> None:
    for attributes, body in script_tags(html):
        if re.search(r"""\bsrc\s*=""", attributes):
            assert not body.strip(), f"{where}: <script src> with a body"
        else:
            assert re.search(r"""\btype\s*=\s*["']application/json["']""", attributes), (
                f"{where}: inline <script{attributes}>"
            )
    # Handlers (onclick=...) and javascript: URLs are inline script; style attributes and
    # <style> elements are inline style. The policy blocks all of them.
    assert not re.search(r"""<[^>]*\son[a-z]+\s*=""", html, flags=re.I), f"{where}: on*="
    assert "javascript:" not in html.lower(), f"{where}: javascript: URL"
    if not styles:
        return
    assert not re.search(r"""<[^>]*\sstyle\s*=""", html, flags=re.I), f"{where}: style="
    assert not re.search(r"<style\b", html, flags=re.I), f"{where}: <style>"


def test_csp_header_on_healthz(db: None, client: Client) -> None:
    response = client.get("/healthz")
    assert response.headers["Content-Security-Policy"] == CSP


def test_csp_header_on_html_pages_without_inline_code(db: None, client: Client) -> None:
    study = make_study(n_events=1, n_practice=0)
    pages = [f"/s/{study.slug}/", "/admin/login/"]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response["Content-Type"].startswith("text/html"), url
        assert response.headers["Content-Security-Policy"] == CSP, url
        assert_no_inline_code(response.content.decode(), url)


def test_csp_header_on_the_task_page_without_inline_code(db: None, client: Client) -> None:
    study = make_study(n_events=2, n_practice=1)
    enrol = client.post(
        f"/api/v1/studies/{study.slug}/enrol",
        data=json.dumps({"consent": True}),
        content_type="application/json",
    )
    assert enrol.status_code == 201, enrol.content
    response = client.get(enrol.json()["task_url"])
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    html = response.content.decode()
    assert_no_inline_code(html, "task page")
    assert any('type="application/json"' in attributes for attributes, _ in script_tags(html))


def test_api_docs_page_runs_under_the_csp(db: None, client: Client) -> None:
    """Swagger UI must load its code from files: drf-spectacular's SpectacularSwaggerView
    inlines it (blocked by the policy, the page stays blank); SpectacularSwaggerSplitView
    serves it as a script of its own. (Its small inline <style> is only cosmetic.)"""
    response = client.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert_no_inline_code(response.content.decode(), "/api/v1/docs/", styles=False)


def template_files() -> list[Path]:
    folders = [ROOT / "templates", *ROOT.glob("*/templates")]
    return sorted(p for folder in folders for p in folder.rglob("*.html"))


def test_templates_have_no_inline_script_handlers_or_styles() -> None:
    templates = template_files()
    assert ROOT / "templates" / "base.html" in templates
    for path in templates:
        # json_script renders <script type="application/json">: allowed.
        assert_no_inline_code(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


JS_FORBIDDEN = {
    "eval(": re.compile(r"(?<![\w.$])eval\s*\("),
    "new Function(": re.compile(r"\bnew\s+Function\s*\("),
    "Function(": re.compile(r"(?<![\w.$])Function\s*\("),
    "string timer": re.compile(r"\bset(?:Timeout|Interval)\s*\(\s*[\"'`]"),
    "on*= in markup": re.compile(r"""<[a-z][^>]*\son[a-z]+\s*=""", re.I),
    "setAttribute('on*')": re.compile(r"""setAttribute\(\s*["']on"""),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "style= in markup": re.compile(r"""<[a-z][^>]*\sstyle\s*=""", re.I),
    "setAttribute('style')": re.compile(r"""setAttribute\(\s*["']style["']"""),
}


def test_static_scripts_need_neither_eval_nor_inline_code() -> None:
    scripts = sorted((ROOT / "static").rglob("*.js"))
    assert scripts
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        for what, pattern in JS_FORBIDDEN.items():
            match = pattern.search(text)
            assert match is None, f"{path.relative_to(ROOT)}: {what}: {match and match.group()}"


# --- /healthz -----------------------------------------------------------------------------


def test_healthz_is_ok(db: None, client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    # The test run has no REDIS_URL: tasks run in-process, and there is no broker to ask.
    assert response.json() == {"status": "ok", "database": "ok", "broker": "in-process"}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port that refuses connections: bound, never listening, held for the test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_healthz_is_503_when_the_broker_is_unreachable(
    db: None, client: Client, settings: Any, closed_port: int
) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port}/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "error",
        "database": "ok",
        "broker": "error: ConnectionError",
    }


@pytest.mark.services
def test_healthz_is_ok_with_a_live_broker(
    db: None, client: Client, settings: Any, redis_url: str
) -> None:
    settings.CELERY_BROKER_URL = redis_url
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


# --- docker/healthcheck.py and docker/entrypoint.py ----------------------------------------


class StubHandler(BaseHTTPRequestHandler):
    status = 200
    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        StubHandler.seen.append((self.path, self.headers.get("Host")))
        self.send_response(self.status)
        if self.status == 301:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"status": "stub"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "exit_code"), [(200, 0), (503, 1), (301, 1), (400, 1)])
def test_healthcheck_script_passes_on_200_only(
    stub_server: ThreadingHTTPServer, status: int, exit_code: int
) -> None:
    StubHandler.status, StubHandler.seen = status, []
    url = f"http://127.0.0.1:{stub_server.server_port}/healthz"
    env = clean_env(ALLOWED_HOSTS=".study.example.org,localhost")
    result = run([str(BIN / "python"), "docker/healthcheck.py", url], env=env, timeout=30)
    assert result.returncode == exit_code, result.stdout + result.stderr
    # One request (a redirect is not followed), with a Host that ALLOWED_HOSTS accepts.
    assert StubHandler.seen == [("/healthz", "study.example.org")]


def test_healthcheck_script_fails_when_nothing_listens(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/healthz"
    result = run([str(BIN / "python"), "docker/healthcheck.py", url], env=clean_env())
    assert result.returncode == 1
    assert "Connection refused" in result.stderr


SHOW_KEY = "import os; print(os.environ.get('SECRET_KEY_FILE', '-'))"


def test_entrypoint_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    key_file = tmp_path / "secret_key"
    env = clean_env(GENERATED_SECRET_KEY_FILE=str(key_file))
    entrypoint = [str(BIN / "python"), "docker/entrypoint.py"]
    first = run([*entrypoint, "python", "-c", SHOW_KEY], env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == str(key_file)
    key = key_file.read_text()
    assert len(key) >= 80 and key_file.stat().st_mode & 0o777 == 0o600
    second = run([*entrypoint, "python", "-c", SHOW_KEY], env=env)
    assert second.stdout.strip() == str(key_file) and key_file.read_text() == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]  # no temporary left

    # The settings take it in production mode.
    production = {**env, "PRODUCTION": "1", "DJANGO_SETTINGS_MODULE": "belief_web.settings"}
    shown = "from django.conf import settings; print(settings.SECRET_KEY)"
    loaded = run([*entrypoint, "python", "-c", shown], env=production)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == key


@pytest.mark.parametrize("given", ["SECRET_KEY", "SECRET_KEY_FILE"])
def test_entrypoint_leaves_a_given_key_alone(tmp_path: Path, given: str) -> None:
    key_file = tmp_path / "secret_key"
    env = clean_env(GENERATED_SECRET_KEY_FILE=str(key_file), **{given: "/run/secrets/k"})
    result = run([str(BIN / "python"), "docker/entrypoint.py", "python", "-c", SHOW_KEY], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("-" if given == "SECRET_KEY" else "/run/secrets/k")
    assert not key_file.exists()


# --- the stack, as `docker compose up` starts it ---------------------------------------------


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def tail(self, size: int = 3000) -> str:
        """The end of the log, less Celery's echo of a traceback one character a line."""
        noise = re.compile(r"^\[[^]]+: WARNING/MainProcess\] \S?\s*$")
        lines = [line for line in self.text().splitlines() if not noise.match(line)]
        return "\n".join(lines)[-size:]


def wait_for(what: str, check: Any, timeout: float, started: list[Started]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for s in started:
            assert s.process.poll() is None, f"{s.name} exited early:\n{s.tail()}"
        time.sleep(0.5)
    logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in started)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def get(port: int, path: str, **headers: str) -> Reply:
    return request(port, "GET", path, headers)


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> Reply:
    """One request as the proxy would send it (Host example.org), redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": "example.org", **headers})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own: no other test's worker may take its tasks."""
    server = shutil.which("redis-server")
    need("redis-server", server is not None)
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed command
        [str(server), "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None, "redis-server"
            time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def stack_database() -> Iterator[str]:
    """A PostgreSQL database of the stack's own, next to the test database."""
    url = os.environ.get("DATABASE_URL", "")
    need("PostgreSQL", url.startswith("postgres"))
    import psycopg
    from psycopg import sql

    name = f"bw_deploy_stack_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            connection.execute(drop.format(sql.Identifier(name)))


@pytest.mark.services
def test_stack_runs_as_compose_starts_it(
    tmp_path: Path, private_redis: str, stack_database: str, image: Image
) -> None:
    """In the image's layout: migrate, then web, worker and beat with the compose file's
    commands and environment (through the image's entrypoint, with a generated key), checked
    by the compose file's own health checks; beat's sweep reaches the worker through Redis."""
    assert image.collectstatic.returncode == 0, image.collectstatic.stderr
    app = image.app
    broker = private_redis
    spec = compose(
        {
            "DATABASE_URL": stack_database,
            "REDIS_URL": broker,
            "ALLOWED_HOSTS": "example.org",
            "WEB_WORKERS": "2",
            "WORKER_CONCURRENCY": "1",
        }
    )
    services = spec["services"]
    port = free_port()
    node = f"bw-deploy-{uuid.uuid4().hex[:8]}"
    schedule = tmp_path / "celerybeat-schedule"

    def env_of(service: str) -> dict[str, str]:
        return clean_env(
            **services[service]["environment"],
            GENERATED_SECRET_KEY_FILE=str(tmp_path / "secret_key"),
            SWEEP_SECONDS="1",
            HOSTNAME=node,
            HOME=str(tmp_path),
        )

    def through_entrypoint(args: list[str]) -> list[str]:
        return [str(BIN / "python"), "docker/entrypoint.py", *args]

    migrate = run(
        through_entrypoint(argv(services["migrate"]["command"])), cwd=app, env=env_of("migrate")
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    web_args = argv(services["web"]["command"])
    web_args[web_args.index("0.0.0.0")] = "127.0.0.1"  # noqa: S104
    web_args[web_args.index("8000")] = str(port)
    worker_args = [*argv(services["worker"]["command"]), "--hostname", f"celery@{node}"]
    beat_args = argv(services["beat"]["command"])
    beat_args[beat_args.index("/tmp/celerybeat-schedule")] = str(schedule)  # noqa: S108

    started: list[Started] = []

    def start(name: str, args: list[str]) -> Started:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(  # noqa: S603 - our own commands
                through_entrypoint(args),
                cwd=app,
                env=env_of(name),
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started.append(Started(name, process, log))
        return started[-1]

    def web_healthy() -> bool:
        test = [
            a.replace("/app/", f"{app}/").replace(":8000/", f":{port}/")
            for a in services["web"]["healthcheck"]["test"][1:]
        ]
        return run(test, env=env_of("web"), timeout=30).returncode == 0

    worker_check = services["worker"]["healthcheck"]["test"][1]  # $$ already made $

    def worker_healthy(check: str = worker_check) -> bool:
        return run(["sh", "-c", check], env=env_of("worker"), timeout=60).returncode == 0

    try:
        # Before the worker runs, its health check fails (celery exits non-zero).
        assert not worker_healthy(worker_check.replace("--timeout 10", "--timeout 2"))

        start("web", web_args)
        start("worker", worker_args)
        start("beat", beat_args)
        wait_for("the web health check", web_healthy, 90, started)

        # Plain HTTP is redirected to HTTPS; behind the proxy (X-Forwarded-Proto) it is not.
        plain = get(port, "/admin/login/")
        assert plain.status == 301
        assert plain.header("Location") == "https://example.org/admin/login/"
        proxied = get(port, "/admin/login/", **{"X-Forwarded-Proto": "https"})
        assert proxied.status == 200
        assert proxied.header("Content-Security-Policy") == CSP
        assert proxied.header("Strict-Transport-Security") == (
            "max-age=31536000; includeSubDomains; preload"
        )
        assert "secure" in (proxied.header("Set-Cookie") or "").lower()
        # WhiteNoise serves the collected files under their hashed, immutable names.
        manifest = json.loads((app / "staticfiles" / "staticfiles.json").read_text())["paths"]
        hashed = manifest["vendor/jspsych/index.browser.min.js"]
        vendor = get(port, f"/static/{hashed}", **{"X-Forwarded-Proto": "https"})
        assert vendor.status == 200
        assert "immutable" in (vendor.header("Cache-Control") or "")

        # Every kind of page renders in production, where {% static %} needs the manifest.
        demo = run(
            through_entrypoint(["python", "manage.py", "load_demo", "--base-url", "https://x"]),
            cwd=app,
            env=env_of("web"),
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        https = {"X-Forwarded-Proto": "https"}
        enrol = request(
            port,
            "POST",
            "/api/v1/studies/demo/enrol",
            {**https, "Content-Type": "application/json"},
            json.dumps({"consent": True}).encode(),
        )
        assert enrol.status == 201, enrol.body
        task_url = urlsplit(json.loads(enrol.body)["task_url"]).path
        for path, status in [
            ("/s/demo/", 200),
            (task_url, 200),
            ("/accounts/login/", 200),
            ("/dashboard/", 302),
            ("/api/v1/docs/", 200),
            ("/api/v1/schema/", 200),
        ]:
            page = get(port, path, **https)
            assert page.status == status, (path, page.status, page.body[:2000])
            assert page.header("Content-Security-Policy") == CSP, path

        wait_for("the worker health check", worker_healthy, 90, started)
        worker, beat = started[1], started[2]
        wait_for(
            "beat to send the sweep",
            lambda: (
                "Sending due task sweep-unscored-sessions (scoring.sweep_unscored)" in beat.text()
            ),
            60,
            started,
        )
        wait_for(
            "the worker to run the sweep",
            lambda: re.search(r"Task scoring\.sweep_unscored\[[\w-]+\] succeeded", worker.text()),
            60,
            started,
        )
    finally:
        for s in reversed(started):
            if s.process.poll() is None:
                s.process.send_signal(signal.SIGTERM)
        for s in started:
            try:
                s.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(s.process.pid, signal.SIGKILL)
                s.process.wait(timeout=10)
    # Each one stops cleanly on SIGTERM, as `docker compose stop` sends it.
    for s in started:
        assert s.process.returncode == 0, f"{s.name}: {s.process.returncode}\n{s.tail()}"
    assert not web_healthy()
