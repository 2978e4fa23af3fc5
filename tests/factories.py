"""factory_boy factories and a small-study builder for tests."""

from datetime import timedelta
from typing import Any

import factory

from trials import models


class StudyFactory(factory.django.DjangoModelFactory[models.Study]):
    class Meta:
        model = models.Study

    slug = factory.Sequence(lambda n: f"study-{n}")
    title = factory.Sequence(lambda n: f"Study {n}")
    consent_text = {"en": "Consent text.", "fr": "Texte de consentement."}
    min_br_view_ms = 100


class EventListFactory(factory.django.DjangoModelFactory[models.EventList]):
    class Meta:
        model = models.EventList

    name = factory.Sequence(lambda n: f"list-{n}")


def make_event_list(
    *, n_events: int = 4, n_practice: int = 1, prefix: str = "E"
) -> models.EventList:
    """A list with n_practice practice events then n_events events, base rates 20, 30, ..."""
    event_list = EventListFactory(name=f"{prefix}-list-{models.EventList.objects.count()}")
    for i in range(n_practice):
        models.Event.objects.create(
            event_list=event_list,
            code=f"PR{i + 1}",
            texts={"en": f"Practice {i + 1}", "fr": f"Essai {i + 1}"},
            base_rate=50,
            practice=True,
            position=i,
        )
    for i in range(n_events):
        models.Event.objects.create(
            event_list=event_list,
            code=f"{prefix}{i + 1:02d}",
            texts={"en": f"Event {prefix}{i + 1}", "fr": f"Événement {prefix}{i + 1}"},
            base_rate=20 + 10 * (i % 5),
            position=n_practice + i,
        )
    return event_list


def make_study(
    *,
    n_events: int = 4,
    n_practice: int = 1,
    arms: tuple[str, ...] = ("patients", "controls"),
    n_timepoints: int = 2,
    n_lists: int | None = None,
    **study_fields: Any,
) -> models.Study:
    """A ready study: arms, timepoints (0, +4 h..+12 h, ...), one list per timepoint."""
    study = StudyFactory(**study_fields)
    for code in arms:
        models.Arm.objects.create(study=study, code=code, name=code.title())
    for order in range(n_timepoints):
        models.Timepoint.objects.create(
            study=study,
            order=order,
            label="baseline" if order == 0 else f"T{order}",
            opens_after=timedelta(hours=4 * order),
            closes_after=timedelta(hours=12 * order) if order else None,
        )
    for position in range(n_lists or n_timepoints):
        models.StudyEventList.objects.create(
            study=study,
            event_list=make_event_list(
                n_events=n_events, n_practice=n_practice, prefix="ABCDEFGH"[position]
            ),
            position=position,
        )
    return study
