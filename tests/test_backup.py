"""A pg_dump of a live database restores into an empty one with identical contents."""

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection

from audit.services import audit_record
from scoring.selectors import trials_frame
from tests.factories import make_study
from trials.models import Session
from trials.services.enrolment import study_enrol
from trials.services.responses import response_record, session_complete, steps_of


def _complete_session(study_slug: str) -> Session:
    from trials.models import Study

    session = study_enrol(study=Study.objects.get(slug=study_slug)).session
    br = 0
    for i, step in enumerate(steps_of(session)):
        value = br if step.phase == "br" else 10 + (7 * i) % 60
        recorded = response_record(
            token=session.token,
            client_id=uuid.uuid4(),
            event=step.code,
            phase=step.phase,
            value=value,
            rt_ms=1500,
            onset_at=None,
        )
        if step.phase == "e1":
            assert recorded.br is not None
            br = recorded.br
    session_complete(token=session.token)
    return session


def _tables(dsn: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        dumps = {}
        for name in names:
            with conn.cursor().copy(
                f'COPY (SELECT * FROM "{name}" ORDER BY 1) TO STDOUT'  # noqa: S608 - catalogue names
            ) as copy:
                dumps[name] = b"".join(bytes(block) for block in copy).decode()
        return dumps


def _server_dsn() -> str:
    """The test database's server, without a database name."""
    s = connection.settings_dict
    user, host, port = s["USER"] or "postgres", s["HOST"] or "127.0.0.1", s["PORT"] or 5432
    return f"postgresql://{user}@{host}:{port}"


@pytest.fixture
def restored_dsn(postgres: None) -> Iterator[str]:
    base = _server_dsn()
    name = f"{connection.settings_dict['NAME']}_restored"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_dump_restores_identically(restored_dsn: str, tmp_path: Path) -> None:
    if not shutil.which("pg_dump") or not shutil.which("pg_restore"):
        pytest.fail("pg_dump / pg_restore are not installed", pytrace=False)
    study = make_study(n_events=6)
    sessions = [_complete_session(study.slug) for _ in range(3)]
    audit_record(actor=None, action="export", study=study.slug, target="trials.csv")
    source = f"{_server_dsn()}/{connection.settings_dict['NAME']}"
    dump = tmp_path / "belief-web.dump"

    subprocess.run(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={dump}", source], check=True
    )
    subprocess.run(
        ["pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored_dsn}", str(dump)],
        check=True,
    )

    original, restored = _tables(source), _tables(restored_dsn)
    assert sorted(restored) == sorted(original)
    assert "trials_response" in original
    for name in original:
        assert restored[name] == original[name], name
    # The restored data give the same trials export, row for row.
    frame = trials_frame(session_ids=[s.pk for s in sessions])
    assert len(frame) == 3 * 7
    with psycopg.connect(restored_dsn) as conn:
        n_responses = conn.execute("SELECT count(*) FROM trials_response").fetchone()
        n_chain = conn.execute("SELECT count(*) FROM audit_auditentry").fetchone()
    assert n_responses == (3 * (1 * 2 + 6 * 2 + 6),)
    assert n_chain == (1,)
