"""The group fit moved from the dashboard app to scoring (issue 15): no row is lost."""

from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from scoring.models import ModelFit
from tests.factories import make_study

BEFORE = [("dashboard", "0001_initial"), ("scoring", "0003_rescore")]
AFTER = [("dashboard", "0002_modelfit_to_scoring"), ("scoring", "0004_modelfit")]
FITTED_AT = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)


def _migrate(targets: list[tuple[str, str]]) -> Any:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


@pytest.mark.django_db(transaction=True)
def test_the_stored_fits_survive_the_move_and_back() -> None:
    done = make_study(slug="fitted")
    failed = make_study(slug="failed-fit")
    try:
        old = _migrate(BEFORE)
        assert "dashboard_modelfit" in _tables() and "scoring_modelfit" not in _tables()
        old_fit = old.get_model("dashboard", "ModelFit")
        kept = old_fit.objects.create(
            study_id=done.pk,
            status="done",
            fingerprint="v2:16:2026-11-30T09:00:00+00:00",
            pending_fingerprint="v2:16:2026-11-30T09:00:00+00:00",
            n_sessions=16,
            result={"mixed_model": {"n_obs": 640, "coefficients": [{"term": "Intercept"}]}},
            fitted_at=FITTED_AT,
        )
        old_fit.objects.create(
            study_id=failed.pk, status="failed", result={"mixed_model": {"reason": "boom"}}
        )
        # A permission granted on the old model stays granted on the moved one (contenttypes
        # and auth are not migrated here: their current models are the right ones).
        old_type, _ = ContentType.objects.get_or_create(app_label="dashboard", model="modelfit")
        view, _ = Permission.objects.get_or_create(
            content_type=old_type, codename="view_modelfit", defaults={"name": "Can view"}
        )
        Group.objects.create(name="fit readers").permissions.add(view)

        _migrate(AFTER)
        assert "scoring_modelfit" in _tables() and "dashboard_modelfit" not in _tables()
        rows = {f.study_id: f for f in ModelFit.objects.all()}
        assert set(rows) == {done.pk, failed.pk}
        fit = rows[done.pk]
        assert (fit.pk, fit.status, fit.n_sessions, fit.fitted_at) == (
            kept.pk,
            "done",
            16,
            FITTED_AT,
        )
        assert fit.fingerprint == fit.pending_fingerprint == "v2:16:2026-11-30T09:00:00+00:00"
        assert fit.result == {
            "mixed_model": {"n_obs": 640, "coefficients": [{"term": "Intercept"}]}
        }
        assert rows[failed.pk].result == {"mixed_model": {"reason": "boom"}}
        # The identity sequence came along: a new row gets the next id.
        third = ModelFit.objects.create(study=make_study(slug="new-fit"))
        assert third.pk > max(rows[s].pk for s in rows)
        ContentType.objects.clear_cache()
        assert list(
            ContentType.objects.filter(model="modelfit").values_list("app_label", flat=True)
        ) == ["scoring"]
        granted = Group.objects.get(name="fit readers").permissions.all()
        assert [(p.content_type.app_label, p.codename) for p in granted] == [
            ("scoring", "view_modelfit")
        ]

        # Backwards too: the rows go back to the dashboard's table.
        third.delete()
        back = _migrate(BEFORE)
        assert "dashboard_modelfit" in _tables() and "scoring_modelfit" not in _tables()
        restored = back.get_model("dashboard", "ModelFit").objects.get(study_id=done.pk)
        assert (restored.pk, restored.n_sessions, restored.fitted_at) == (kept.pk, 16, FITTED_AT)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
