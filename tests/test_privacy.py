"""No model stores an IP address or a user agent; recruiter ids and e-mail addresses live in
their own tables, which no export reads."""

import re

import pytest
from django.apps import apps
from django.db import models

SUSPECT = re.compile(r"(^|_)(ip|ip_address|remote_addr|user_agent|useragent|ua)$")
PROJECT_APPS = {"trials", "scoring", "audit", "accounts", "dashboard", "reminders"}


def test_no_ip_or_user_agent_columns() -> None:
    offenders = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS
        for field in model._meta.get_fields()
        if isinstance(field, models.GenericIPAddressField) or SUSPECT.search(field.name)
    ]
    assert offenders == []


def test_external_ids_are_only_in_participant_identity() -> None:
    holders = sorted(
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS
        for field in model._meta.get_fields()
        if field.name == "external_id"
    )
    assert holders == ["trials.ParticipantIdentity.external_id"]


def test_email_addresses_are_only_in_the_contact_table() -> None:
    holders = sorted(
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS
        for field in model._meta.get_fields()
        if isinstance(field, models.EmailField)
        or ("mail" in field.name and not isinstance(field, models.BooleanField))
    )
    assert holders == ["reminders.Contact.email"]


EXPORTS = [
    "trials/",
    "trials/?format=csv",
    "trials/?format=parquet",
    "trials/?include=external_id",
    "trials/?format=csv&include=external_id",
    "responses/",
    "responses/?format=csv&include=external_id",
    "scores/",
    "scores/?format=csv&include=external_id",
    "scores/?format=parquet&include=external_id",
    "participants/",
    "participants/?include=external_id",
    "sessions/",
    "codebook/",
    "summary/",
    "",
]


@pytest.mark.django_db
def test_no_export_carries_an_email_address() -> None:
    from reminders.models import Contact
    from tests.api.conftest import golden_study, make_researchers
    from tests.factories import make_study
    from trials.models import Participant

    study = golden_study()
    researchers = make_researchers(study, make_study(slug="other-study"))
    participants = list(Participant.objects.filter(study=study))
    for p in participants:
        Contact.objects.create(
            participant=p,
            study=study,
            email=f"secret-{p.pk}@mailhost.test",
            consented_at=p.created_at,
        )
    client = researchers.client("owner")
    checked = []
    for path in EXPORTS:
        response = client.get(f"/api/v1/studies/{study.slug}/{path}")
        assert response.status_code == 200, (path, response.status_code)
        streamed = response.streaming
        body = b"".join(response.streaming_content) if streamed else response.content  # type: ignore[attr-defined]
        assert b"secret-" not in body and b"mailhost" not in body, path
        checked.append(path)
    assert len(checked) == len(EXPORTS) and len(participants) == 4
