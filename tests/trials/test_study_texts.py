"""A study's title per language: what participants read on the consent page and in the task."""

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from tests.factories import make_study
from trials.services.enrolment import study_enrol


@pytest.mark.django_db
def test_participants_read_the_title_of_their_language(client: Client) -> None:
    study = make_study(slug="titled", title="Belief updating")
    study.title_texts = {"fr": "Mise à jour des croyances"}
    study.save(update_fields=["title_texts"])
    french = client.get("/s/titled/?lang=fr").content.decode()
    assert "<title>Mise à jour des croyances</title>" in french
    assert "<h1>Mise à jour des croyances</h1>" in french
    english = client.get("/s/titled/?lang=en").content.decode()
    assert "<h1>Belief updating</h1>" in english and "Mise à jour" not in english
    for language, title in (("fr", "Mise à jour des croyances"), ("en", "Belief updating")):
        enrolled = study_enrol(study=study, language=language)
        state = client.get(f"/api/v1/sessions/{enrolled.session.token}").json()
        assert (state["language"], state["config"]["title"]) == (language, title)


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_existing_titles() -> None:
    executor = MigrationExecutor(connection)
    before = [("trials", "0008_event_list_owner")]
    after = [("trials", "0009_study_title_description_texts")]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("trials", "Study")
    old.objects.create(slug="kept", title="Kept title", description="Kept description")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new: Any = executor.loader.project_state(after).apps.get_model("trials", "Study")
    row = new.objects.get(slug="kept")
    assert (row.title, row.description) == ("Kept title", "Kept description")
    assert (row.title_texts, row.description_texts) == ({}, {})
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
