"""The demonstration studies: `demo` (two arms, three timepoints, three illustrative lists of
adverse events) and `demo-positive` (one visit, a list that mixes adverse and positive events,
scored with the polarity-aware rule of score version 2)."""

import secrets
from datetime import timedelta
from pathlib import Path

from django.contrib.auth.models import User
from django.db import transaction

from trials.models import Arm, EventList, Study, StudyEventList, StudyMembership, Timepoint
from trials.services.event_lists import event_list_import

DEMO_DIR = Path(__file__).resolve().parent.parent / "demo"
DEMO_LISTS = (("demo-a", "list_a.csv"), ("demo-b", "list_b.csv"), ("demo-c", "list_c.csv"))
POSITIVE_LIST = ("demo-positive", "list_positive.csv")
POSITIVE_DESCRIPTION = (
    "Demonstration of positive events (PROTOCOL.md, score version 2): 16 adverse and 8 "
    "desirable events; for a desirable one, a base rate above the estimate is good news. Base "
    "rates are illustrative: see trials/demo/README.md."
)

CONSENT = {
    "en": (
        "This is a DEMONSTRATION of the belief-updating task. You will read short descriptions "
        "of adverse life events, estimate how likely each is to happen to you, and see the "
        "average probability for someone like you. It takes about 15 minutes. Your answers "
        "are stored without your name. The base rates shown are ILLUSTRATIVE figures made up "
        "for this demonstration, not real statistics. You may stop at any time."
    ),
    "fr": (
        "Ceci est une DÉMONSTRATION de la tâche de mise à jour des croyances. Vous lirez de "
        "courtes descriptions d'événements de vie négatifs, estimerez la probabilité que chacun "
        "vous arrive, puis verrez la probabilité moyenne pour une personne comme vous. Cela dure "
        "environ 15 minutes. Vos réponses sont enregistrées sans votre nom. Les probabilités "
        "moyennes affichées sont des valeurs ILLUSTRATIVES inventées pour cette démonstration, "
        "pas de vraies statistiques. Vous pouvez arrêter à tout moment."
    ),
}
DESCRIPTION = (
    "Demonstration study. Base rates are illustrative, not epidemiological estimates: "
    "see trials/demo/README.md and the source column of each list."
)


@transaction.atomic
def demo_study_load(*, password: str | None = None) -> tuple[Study, User, str]:
    """Create or refresh the demo study and its owner `demo`, whose password is (re)set.

    The password is the one given, else a new random one: a hash cannot be printed back.
    """
    lists = [_demo_list(name, file_name) for name, file_name in DEMO_LISTS]
    study, _created = Study.objects.get_or_create(
        slug="demo",
        defaults={
            "title": "Belief updating: demonstration",
            "title_texts": {"fr": "Mise à jour des croyances\u00a0: démonstration"},
            "description": DESCRIPTION,
            "consent_text": CONSENT,
            "languages": ["en", "fr"],
        },
    )
    for code, name in (("patients", "Patients"), ("controls", "Controls")):
        Arm.objects.get_or_create(study=study, code=code, defaults={"name": name})
    windows = (
        (0, "baseline", timedelta(0), None),
        (1, "+4 h", timedelta(hours=4), timedelta(hours=12)),
        (2, "+7 days", timedelta(days=7), timedelta(days=10)),
    )
    for order, label, opens, closes in windows:
        Timepoint.objects.get_or_create(
            study=study,
            order=order,
            defaults={"label": label, "opens_after": opens, "closes_after": closes},
        )
    for position, event_list in enumerate(lists):
        StudyEventList.objects.get_or_create(
            study=study, event_list=event_list, defaults={"position": position}
        )
    _demo_instruments(study)
    positive = _demo_positive_study()
    user, _user_created = User.objects.get_or_create(username="demo")
    new_password = password or secrets.token_urlsafe(12)
    user.set_password(new_password)
    user.save()
    for owned in (study, positive):
        StudyMembership.objects.get_or_create(
            study=owned, user=user, defaults={"role": StudyMembership.Role.OWNER}
        )
    return study, user, new_password


def _demo_list(name: str, file_name: str) -> EventList:
    event_list = EventList.objects.filter(name=name).first()
    if event_list is None:
        event_list = event_list_import(
            name=name,
            text=(DEMO_DIR / file_name).read_text(encoding="utf-8"),
            description="Illustrative base rates (demonstration only).",
            shared=True,
        )
    return event_list


def _demo_positive_study() -> Study:
    """The study that asks for positive events: one arm, one visit, eBR collected (idempotent)."""
    event_list = _demo_list(*POSITIVE_LIST)
    study, _created = Study.objects.get_or_create(
        slug="demo-positive",
        defaults={
            "title": "Belief updating with positive events: demonstration",
            "description": POSITIVE_DESCRIPTION,
            "consent_text": CONSENT,
            "languages": ["en", "fr"],
            "collect_ebr": True,
        },
    )
    Arm.objects.get_or_create(study=study, code="all", defaults={"name": "All"})
    Timepoint.objects.get_or_create(
        study=study, order=0, defaults={"label": "baseline", "opens_after": timedelta(0)}
    )
    StudyEventList.objects.get_or_create(
        study=study, event_list=event_list, defaults={"position": 0}
    )
    return study


def _demo_instruments(study: Study) -> None:
    """Demographics before the task at baseline, PHQ-9 after it at each visit, MADRS (rated
    by staff, for the patients) at each visit; the shipped files, refreshed (idempotent)."""
    from instruments.services import instrument_attach, instruments_load_shipped

    shipped = {instrument.code: instrument for instrument in instruments_load_shipped()}
    timepoints = list(Timepoint.objects.filter(study=study).order_by("order"))
    instrument_attach(
        study=study,
        timepoint=timepoints[0],
        instrument=shipped["demographics"],
        position="before",
    )
    for timepoint in timepoints:
        instrument_attach(
            study=study, timepoint=timepoint, instrument=shipped["phq9"], position="after"
        )
        instrument_attach(study=study, timepoint=timepoint, instrument=shipped["madrs"])
