"""No model stores an IP address or a user agent; recruiter ids live in their own table."""

import re

from django.apps import apps
from django.db import models

SUSPECT = re.compile(r"(^|_)(ip|ip_address|remote_addr|user_agent|useragent|ua)$")
PROJECT_APPS = {"trials", "scoring", "audit", "accounts", "dashboard"}


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
