"""Study setup, the researcher's writes: settings, status, arms, timepoints, event lists, members.

Every write checks its whole input first and raises InvalidInput with the offending
fields named (nothing is written), or Conflict when the study's state forbids it. Each
change is also appended to the audit log. The dashboard's setup pages call these.
"""

import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from reminders.services import EMAIL_FORBIDDEN_SOURCES
from trials.models import (
    Arm,
    Event,
    EventList,
    ParticipantIdentity,
    Session,
    Study,
    StudyEventList,
    StudyMembership,
    Timepoint,
)
from trials.selectors import event_lists_visible
from trials.services.errors import Conflict, InvalidInput, NotFound
from trials.services.event_lists import event_list_import

Role = StudyMembership.Role
LANGUAGE_CODES = [code for code, _name in settings.LANGUAGES]
STUDY_FIELDS = (
    "title",
    "description",
    "title_texts",
    "description_texts",
    "languages",
    "consent_text",
    "debrief_text",
    "scale_min",
    "scale_max",
    "br_mode",
    "adaptive_d_min",
    "adaptive_d_max",
    "collect_ebr",
    "collect_confidence",
    "memory_test",
    "ratings",
    "show_debrief",
    "min_br_view_ms",
    "min_valid_per_valence",
    "lr_max",
    "completion_code",
    "redirect_url",
    "resume_by_external_id",
    "collect_email",
    "reminder_closing_hours",
)
# A session's steps are derived from these settings (trials.steps) and its answers were
# checked against the scale: once a session exists they are part of its data.
LOCKED_ONCE_STARTED = (
    "scale_min",
    "scale_max",
    "br_mode",
    "adaptive_d_min",
    "adaptive_d_max",
    "collect_ebr",
    "collect_confidence",
    "memory_test",
    "ratings",
)
_CODE = re.compile(r"^[A-Za-z0-9_-]*$")


class _Problems:
    """Collects field errors; raises them all at once."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(message)

    def raise_if_any(self) -> None:
        if self.fields:
            first = next(iter(self.fields))
            raise InvalidInput(
                _("%(field)s: %(message)s") % {"field": first, "message": self.fields[first][0]},
                fields=self.fields,
            )


def _has_sessions(study: Study) -> bool:
    return Session.objects.filter(participant__study=study).exists()


# ---------------------------------------------------------------- studies


def _study_check(*, values: dict[str, Any], study: Study | None) -> None:
    problems = _Problems()
    if not str(values.get("title", "")).strip():
        problems.add("title", _("A study needs a title."))
    languages = list(values.get("languages") or [])
    if not languages:
        problems.add("languages", _("Choose at least one language."))
    for code in languages:
        if code not in LANGUAGE_CODES:
            problems.add("languages", _("'%(code)s' is not offered.") % {"code": code})
        elif not str(values.get("consent_text", {}).get(code, "")).strip():
            problems.add(
                f"consent_text_{code}",
                _("Participants in this language need a consent text."),
            )
    low, high = values["scale_min"], values["scale_max"]
    if not 0 <= low < high <= 100:
        problems.add("scale_max", _("The highest estimate must be above the lowest, at most 100."))
    d_min, d_max = values["adaptive_d_min"], values["adaptive_d_max"]
    if d_min < 1:
        problems.add("adaptive_d_min", _("The smallest distance must be at least 1."))
    if d_max < d_min:
        problems.add("adaptive_d_max", _("The largest distance must not be below the smallest."))
    if values["br_mode"] == Study.BaseRateMode.ADAPTIVE and high - low < 2 * d_min:
        problems.add(
            "adaptive_d_min",
            _("With this scale some first estimates leave no room for a base rate %(d)s away.")
            % {"d": d_min},
        )
    if values["br_mode"] not in Study.BaseRateMode.values:
        problems.add("br_mode", _("Unknown base-rate mode."))
    if values.get("collect_email") and _recruited_without_email(study, values):
        problems.add(
            "collect_email",
            _(
                "Participants of this study come from a recruiter that forbids asking them "
                "for an e-mail address (Prolific, SONA, MTurk): use the list of due "
                "participants on the Reminders page instead."
            ),
        )
    if not _CODE.match(values.get("completion_code") or ""):
        problems.add("completion_code", _("Use letters, digits, hyphens and underscores only."))
    if study is not None and 0 <= low < high <= 100:
        _check_base_rates(
            problems=problems,
            lists=list(
                StudyEventList.objects.filter(study=study).values_list("event_list_id", flat=True)
            ),
            low=low,
            high=high,
            adaptive=values["br_mode"] == Study.BaseRateMode.ADAPTIVE,
            field_low="scale_min",
            field_high="scale_max",
        )
    if study is not None and _has_sessions(study):
        for name in LOCKED_ONCE_STARTED:
            if values[name] != getattr(study, name):
                problems.add(
                    name,
                    _("Sessions have started: this setting can no longer change."),
                )
    problems.raise_if_any()


def _recruited_without_email(study: Study | None, values: dict[str, Any]) -> bool:
    """Whether the study recruits where asking for an e-mail address is forbidden."""
    if "prolific." in str(values.get("redirect_url") or "").lower():
        return True
    return study is not None and (
        ParticipantIdentity.objects.filter(study=study, source__in=EMAIL_FORBIDDEN_SOURCES).exists()
    )


def _check_base_rates(
    *,
    problems: _Problems,
    lists: list[int],
    low: int,
    high: int,
    adaptive: bool,
    field_low: str,
    field_high: str,
) -> None:
    """Every base rate a participant will see must be a possible answer on the scale.

    In adaptive mode only the practice events show their list's base rate.
    """
    if not lists:
        return
    events = Event.objects.filter(event_list_id__in=lists)
    if adaptive:
        events = events.filter(practice=True)
    for row in events.values("event_list__name").annotate(
        low=Min("base_rate"), high=Max("base_rate")
    ):
        name = row["event_list__name"]
        if row["low"] < low:
            problems.add(
                field_low,
                _("List '%(list)s' has a base rate of %(br)s%%, below the scale's %(low)s%%.")
                % {"list": name, "br": row["low"], "low": low},
            )
        if row["high"] > high:
            problems.add(
                field_high,
                _("List '%(list)s' has a base rate of %(br)s%%, above the scale's %(high)s%%.")
                % {"list": name, "br": row["high"], "high": high},
            )


def study_create(*, user: Any, slug: str, values: dict[str, Any]) -> Study:
    """A new study, paused until its owner opens it; the creator is its owner."""
    slug = slug.strip().lower()
    _study_check(values=values, study=None)
    if Study.objects.filter(slug=slug).exists():
        raise InvalidInput(
            _("The short name '%(slug)s' is taken.") % {"slug": slug},
            fields={"slug": [_("This short name is taken: choose another.")]},
        )
    try:
        with transaction.atomic():
            study = Study.objects.create(
                slug=slug,
                status=Study.Status.PAUSED,
                **{k: values[k] for k in STUDY_FIELDS},
            )
            StudyMembership.objects.create(study=study, user=user, role=Role.OWNER)
            audit_record(actor=user, action="study.create", study=slug, target=slug)
    except IntegrityError:
        # Another request took the slug between the check and the insert.
        raise InvalidInput(
            _("The short name '%(slug)s' is taken.") % {"slug": slug},
            fields={"slug": [_("This short name is taken: choose another.")]},
        ) from None
    return study


@transaction.atomic
def study_update(*, study: Study, actor: Any, values: dict[str, Any]) -> Study:
    """Change a study's settings; locked settings of a started study are refused."""
    locked = Study.objects.select_for_update().get(pk=study.pk)
    _study_check(values=values, study=locked)
    changed = [k for k in STUDY_FIELDS if getattr(locked, k) != values[k]]
    for name in STUDY_FIELDS:
        setattr(locked, name, values[name])
    locked.save()
    audit_record(actor=actor, action="study.update", study=locked.slug, detail={"changed": changed})
    return locked


def study_readiness(*, study: Study) -> list[str]:
    """What stops the study from taking participants (empty when it is ready)."""
    missing = []
    n_arms = Arm.objects.filter(study=study).count()
    n_timepoints = Timepoint.objects.filter(study=study).count()
    lists = list(StudyEventList.objects.filter(study=study).values_list("event_list_id", flat=True))
    if n_arms == 0:
        missing.append(_("Add at least one arm."))
    if n_timepoints == 0:
        missing.append(_("Add at least one timepoint."))
    if not lists:
        missing.append(_("Attach at least one event list."))
    elif len(lists) < n_timepoints:
        missing.append(
            _("Each timepoint needs its own list: %(t)s timepoints, %(l)s lists attached.")
            % {"t": n_timepoints, "l": len(lists)}
        )
    empty = (
        EventList.objects.filter(pk__in=lists)
        .exclude(events__practice=False)
        .values_list("name", flat=True)
    )
    for name in empty:
        missing.append(_("List '%(list)s' has no event besides practice.") % {"list": name})
    for code in study.languages:
        if not study.consent_text.get(code, "").strip():
            missing.append(_("Write the consent text in %(code)s.") % {"code": code})
    return missing


def study_status_set(*, study: Study, actor: Any, status: str) -> Study:
    """Open, pause or close a study; opening needs a complete setup."""
    if status not in Study.Status.values:
        raise InvalidInput(_("Unknown status."), fields={"status": [_("Unknown status.")]})
    if status == Study.Status.OPEN:
        missing = study_readiness(study=study)
        if missing:
            raise InvalidInput(_("The study cannot open yet."), fields={"status": missing})
    updated = (
        Study.objects.filter(pk=study.pk)
        .exclude(status=status)
        .update(status=status, updated_at=timezone.now())
    )
    if updated:
        audit_record(
            actor=actor,
            action="study.status",
            study=study.slug,
            detail={"from": study.status, "to": status},
        )
    study.status = status
    return study


# ---------------------------------------------------------------- arms


def _arm_check(*, study: Study, code: str, name: str, arm: Arm | None) -> None:
    problems = _Problems()
    if not name.strip():
        problems.add("name", _("An arm needs a name."))
    if not code or not re.fullmatch(r"[-a-zA-Z0-9_]+", code):
        problems.add("code", _("Use letters, digits, hyphens and underscores only."))
    else:
        same_code = Arm.objects.filter(study=study, code=code)
        if arm is not None:
            same_code = same_code.exclude(pk=arm.pk)
        if same_code.exists():
            problems.add("code", _("Another arm of this study has this code."))
    if arm is not None and code != arm.code and arm.participants.exists():
        problems.add("code", _("Participants are in this arm: its code is in their links."))
    problems.raise_if_any()


def arm_create(*, study: Study, actor: Any, code: str, name: str) -> Arm:
    """Add an arm (group) to a study."""
    code, name = code.strip(), name.strip()
    _arm_check(study=study, code=code, name=name, arm=None)
    try:
        with transaction.atomic():
            arm = Arm.objects.create(study=study, code=code, name=name)
    except IntegrityError:
        raise InvalidInput(
            _("Another arm of this study has this code."),
            fields={"code": [_("Another arm of this study has this code.")]},
        ) from None
    audit_record(actor=actor, action="arm.create", study=study.slug, target=code)
    return arm


def arm_update(*, arm: Arm, actor: Any, code: str, name: str) -> Arm:
    """Rename an arm (its code only while nobody is in it)."""
    code, name = code.strip(), name.strip()
    _arm_check(study=arm.study, code=code, name=name, arm=arm)
    arm.code, arm.name = code, name
    try:
        with transaction.atomic():
            arm.save(update_fields=["code", "name"])
    except IntegrityError:
        raise InvalidInput(
            _("Another arm of this study has this code."),
            fields={"code": [_("Another arm of this study has this code.")]},
        ) from None
    audit_record(actor=actor, action="arm.update", study=arm.study.slug, target=code)
    return arm


def arm_delete(*, arm: Arm, actor: Any) -> None:
    """Remove an arm nobody is in."""
    if arm.participants.exists():
        raise Conflict(_("Participants are in this arm: it cannot be removed."), code="in_use")
    slug, code = arm.study.slug, arm.code
    arm.delete()
    audit_record(actor=actor, action="arm.delete", study=slug, target=code)


# ---------------------------------------------------------------- timepoints


def _timepoint_check(*, label: str, opens_after: timedelta, closes_after: timedelta | None) -> None:
    problems = _Problems()
    if not label.strip():
        problems.add("label", _("A timepoint needs a label."))
    if opens_after < timedelta(0):
        problems.add("opens_value", _("A window cannot open before the previous visit."))
    if closes_after is not None and closes_after <= opens_after:
        problems.add("closes_value", _("The window closes before it opens."))
    problems.raise_if_any()


@transaction.atomic
def timepoint_create(
    *,
    study: Study,
    actor: Any,
    label: str,
    opens_after: timedelta,
    closes_after: timedelta | None,
    anchor: str = Timepoint.Anchor.PREVIOUS,
) -> Timepoint:
    """Add a timepoint after the last one."""
    label = label.strip()
    _timepoint_check(label=label, opens_after=opens_after, closes_after=closes_after)
    # Serialises additions so two requests do not take the same order.
    Study.objects.select_for_update().filter(pk=study.pk).first()
    last = Timepoint.objects.filter(study=study).aggregate(m=Max("order"))["m"]
    timepoint = Timepoint.objects.create(
        study=study,
        order=0 if last is None else last + 1,
        label=label,
        opens_after=opens_after,
        closes_after=closes_after,
        anchor=anchor,
    )
    audit_record(
        actor=actor,
        action="timepoint.create",
        study=study.slug,
        target=label,
        detail={"opens_after_s": opens_after.total_seconds(), "anchor": anchor},
    )
    return timepoint


def timepoint_update(
    *,
    timepoint: Timepoint,
    actor: Any,
    label: str,
    opens_after: timedelta,
    closes_after: timedelta | None,
    anchor: str | None = None,
) -> Timepoint:
    """Change a timepoint's label, window or anchor (None: the anchor stays)."""
    label = label.strip()
    _timepoint_check(label=label, opens_after=opens_after, closes_after=closes_after)
    timepoint.label, timepoint.opens_after, timepoint.closes_after = (
        label,
        opens_after,
        closes_after,
    )
    if anchor is not None:
        timepoint.anchor = anchor
    timepoint.save(update_fields=["label", "opens_after", "closes_after", "anchor"])
    audit_record(
        actor=actor,
        action="timepoint.update",
        study=timepoint.study.slug,
        target=label,
        detail={"anchor": timepoint.anchor},
    )
    return timepoint


def timepoint_delete(*, timepoint: Timepoint, actor: Any) -> None:
    """Remove a timepoint with no session."""
    if timepoint.sessions.exists():
        raise Conflict(_("Sessions exist at this timepoint: it cannot be removed."), code="in_use")
    slug, label = timepoint.study.slug, timepoint.label
    timepoint.delete()
    audit_record(actor=actor, action="timepoint.delete", study=slug, target=label)


# ---------------------------------------------------------------- event lists


def _attach_check(*, study: Study, event_list: EventList, field: str) -> None:
    problems = _Problems()
    if _has_sessions(study):
        problems.add(field, _("Sessions have started: the study's lists can no longer change."))
    elif StudyEventList.objects.filter(study=study, event_list=event_list).exists():
        problems.add(field, _("This list is attached already."))
    if not Event.objects.filter(event_list=event_list, practice=False).exists():
        problems.add(field, _("This list has no event besides practice."))
    _check_base_rates(
        problems=problems,
        lists=[event_list.pk],
        low=study.scale_min,
        high=study.scale_max,
        adaptive=study.br_mode == Study.BaseRateMode.ADAPTIVE,
        field_low=field,
        field_high=field,
    )
    problems.raise_if_any()


@transaction.atomic
def study_list_attach(
    *, study: Study, actor: Any, event_list: EventList, field: str = "event_list"
) -> StudyEventList:
    """Add a list to the study's Latin square (at the end): a list the actor may see only."""
    if not event_lists_visible(user=actor).filter(pk=event_list.pk).exists():
        # Another lab's private list: as if it did not exist (issue 14.8).
        raise NotFound(_("No such event list."))
    Study.objects.select_for_update().filter(pk=study.pk).first()
    _attach_check(study=study, event_list=event_list, field=field)
    last = StudyEventList.objects.filter(study=study).aggregate(m=Max("position"))["m"]
    link = StudyEventList.objects.create(
        study=study, event_list=event_list, position=0 if last is None else last + 1
    )
    audit_record(actor=actor, action="study_list.attach", study=study.slug, target=event_list.name)
    return link


@transaction.atomic
def study_list_detach(*, study: Study, actor: Any, event_list_id: int) -> None:
    """Take a list out of a study that has no session yet; the others close ranks."""
    Study.objects.select_for_update().filter(pk=study.pk).first()
    if _has_sessions(study):
        raise Conflict(
            _("Sessions have started: the study's lists can no longer change."), code="in_use"
        )
    link = StudyEventList.objects.filter(study=study, event_list_id=event_list_id).first()
    if link is None:
        raise NotFound(_("This list is not attached to the study."))
    name = link.event_list.name
    link.delete()
    rest = list(StudyEventList.objects.filter(study=study).order_by("position"))
    # Two passes so that no intermediate state breaks the (study, position) uniqueness.
    for i, item in enumerate(rest):
        StudyEventList.objects.filter(pk=item.pk).update(position=1000 + i)
    for i, item in enumerate(rest):
        StudyEventList.objects.filter(pk=item.pk).update(position=i)
    audit_record(actor=actor, action="study_list.detach", study=study.slug, target=name)


def event_list_import_for_study(
    *, study: Study, actor: Any, name: str, text: str, description: str = "", attach: bool = True
) -> EventList:
    """Import a list from CSV and attach it, all or nothing.

    Raises FileRejected with every bad row, or InvalidInput when the list cannot be
    attached (its base rates fall outside the scale, the study has started).
    """
    with transaction.atomic():
        event_list = event_list_import(
            name=name, text=text, description=description, owner_study=study
        )
        if attach:
            study_list_attach(study=study, actor=actor, event_list=event_list, field="file")
    audit_record(
        actor=actor,
        action="event_list.import",
        study=study.slug,
        target=event_list.name,
        detail={"events": event_list.events.count()},
    )
    return event_list


# ---------------------------------------------------------------- members


def _owners_left(study: Study, *, without: StudyMembership) -> int:
    return (
        StudyMembership.objects.filter(study=study, role=Role.OWNER).exclude(pk=without.pk).count()
    )


@transaction.atomic
def membership_set(*, study: Study, actor: Any, username: str, role: str) -> StudyMembership:
    """Give a researcher a role in the study (adds them, or changes their role)."""
    problems = _Problems()
    if role not in Role.values:
        problems.add("role", _("Unknown role."))
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        problems.add("username", _("No account has this username."))
    problems.raise_if_any()
    Study.objects.select_for_update().filter(pk=study.pk).first()
    membership, created = StudyMembership.objects.get_or_create(
        study=study, user=user, defaults={"role": role}
    )
    if not created and membership.role != role:
        if membership.role == Role.OWNER and not _owners_left(study, without=membership):
            raise InvalidInput(
                _("A study keeps at least one owner."),
                fields={"role": [_("This is the last owner: make someone else owner first.")]},
            )
        membership.role = role
        membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.set",
        study=study.slug,
        target=username,
        detail={"role": role},
    )
    return membership


@transaction.atomic
def membership_remove(*, study: Study, actor: Any, membership_id: int) -> None:
    """Take a researcher out of the study; the last owner stays."""
    Study.objects.select_for_update().filter(pk=study.pk).first()
    membership = (
        StudyMembership.objects.select_related("user").filter(study=study, pk=membership_id).first()
    )
    if membership is None:
        raise NotFound(_("No such member."))
    if membership.role == Role.OWNER and not _owners_left(study, without=membership):
        raise Conflict(
            _("This is the last owner: make someone else owner first."), code="last_owner"
        )
    username = membership.user.username
    membership.delete()
    audit_record(actor=actor, action="membership.remove", study=study.slug, target=username)
