"""Forms of the dashboard: they check the shape of the input; services check the rest."""

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.conf import settings
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext, gettext_lazy as _

from accounts.services import DEFAULT_EXPIRES_DAYS
from protocol import phases
from scoring.columns import FLAG_NAMES, LR_MAX_DEFAULT
from trials.models import Session, Study, StudyMembership
from trials.services.study_setup import STUDY_FIELDS

LANGUAGE_CHOICES = [(code, name) for code, name in settings.LANGUAGES]

FLAG_LABELS: dict[str, Any] = {
    "too_few_good": _("Too few good-news trials"),
    "too_few_bad": _("Too few bad-news trials"),
    "constant_e1": _("Same first estimate throughout"),
    "constant_e2": _("Same second estimate throughout"),
    "fast_rt": _("Implausibly fast answers"),
    "many_away": _("Many updates away from the base rate"),
    "no_valid_trials": _("No valid trial"),
    "too_few_for_models": _("Too few trials to compare models"),
}
STATUS_LABELS: dict[str, Any] = {
    Session.Status.CREATED: _("created"),
    Session.Status.IN_PROGRESS: _("in progress"),
    Session.Status.COMPLETED: _("completed"),
    Session.Status.ABANDONED: _("abandoned"),
}
STUDY_STATUS_LABELS: dict[str, Any] = {
    Study.Status.OPEN: _("open"),
    Study.Status.PAUSED: _("paused"),
    Study.Status.CLOSED: _("closed"),
}
ROLE_LABELS: dict[str, Any] = {
    StudyMembership.Role.OWNER: _("owner"),
    StudyMembership.Role.ANALYST: _("analyst"),
    StudyMembership.Role.VIEWER: _("viewer"),
}
DEFAULT_CLOSING_HOURS = Study._meta.get_field("reminder_closing_hours").get_default()
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}
UNIT_CHOICES = [("minutes", _("minutes")), ("hours", _("hours")), ("days", _("days"))]


def _rating_names_now() -> str:
    return ", ".join(gettext(p.label) for p in phases.PHASES if p.block == phases.RATINGS_BLOCK)


# The ratings' names in the language of the request that renders the form.
_rating_names = lazy(_rating_names_now, str)


class StudyForm(forms.Form):
    """Every setting of a study; the slug only at creation (links carry it)."""

    slug = forms.SlugField(
        label=_("Short name in links"),
        max_length=64,
        help_text=_("Letters, digits and hyphens; it appears in the participant link."),
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    description = forms.CharField(
        label=_("Description (researchers only)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    languages = forms.MultipleChoiceField(
        label=_("Languages offered"),
        choices=LANGUAGE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The first one is used when the browser asks for none of them."),
    )
    scale_min = forms.IntegerField(
        label=_("Lowest estimate allowed (%)"), min_value=0, max_value=100
    )
    scale_max = forms.IntegerField(
        label=_("Highest estimate allowed (%)"), min_value=0, max_value=100
    )
    br_mode = forms.ChoiceField(
        label=_("Base rates"),
        choices=[
            (Study.BaseRateMode.FIXED, _("Fixed: the base rates of the event list")),
            (
                Study.BaseRateMode.ADAPTIVE,
                _("Adaptive: drawn from each first estimate (E1 ± d); a debrief is shown"),
            ),
        ],
        widget=forms.RadioSelect,
    )
    adaptive_d_min = forms.IntegerField(
        label=_("Adaptive: smallest distance d"), min_value=1, max_value=100
    )
    adaptive_d_max = forms.IntegerField(
        label=_("Adaptive: largest distance d"), min_value=1, max_value=100
    )
    collect_ebr = forms.BooleanField(
        label=_("Ask for the estimate for an average person (eBR1, eBR2)"), required=False
    )
    collect_confidence = forms.BooleanField(
        label=_("Ask for confidence in each base rate (1-6)"), required=False
    )
    memory_test = forms.BooleanField(label=_("Memory test of the base rates"), required=False)
    ratings = forms.BooleanField(
        label=format_lazy(_("Ratings of each event ({names})"), names=_rating_names()),
        required=False,
    )
    show_debrief = forms.BooleanField(label=_("Show a debrief page"), required=False)
    min_br_view_ms = forms.IntegerField(
        label=_("Minimum viewing time of a base rate (ms)"), min_value=0, max_value=60_000
    )
    min_valid_per_valence = forms.IntegerField(
        label=_("Minimum valid trials per valence before a session is flagged"),
        min_value=1,
        max_value=200,
    )
    lr_max = forms.FloatField(
        label=_("Upper bound of every fitted learning rate"),
        min_value=0.01,
        max_value=2,
        required=False,
        help_text=_(
            "1 (the default): no learning rate past the base rate. Changing it changes the "
            "scores of the next scoring or re-scoring."
        ),
    )
    completion_code = forms.CharField(
        label=_("Completion code"),
        max_length=64,
        required=False,
        help_text=_("One code for every participant (e.g. Prolific's); blank: one per session."),
    )
    redirect_url = forms.URLField(
        label=_("Redirect after the last answer"),
        max_length=500,
        required=False,
        assume_scheme="https",
        help_text=_(
            "e.g. https://app.prolific.com/submissions/complete?cc=CODE; "
            "{completion_code} is replaced by the session's code."
        ),
    )

    resume_by_external_id = forms.BooleanField(
        label=_("A known recruiter id resumes from any browser"),
        required=False,
        help_text=_(
            "Only for long random ids (24+ characters, as Prolific's). Off: a known id resumes "
            "only in the browser that enrolled it; elsewhere the return link is the way back."
        ),
    )
    collect_email = forms.BooleanField(
        label=_("Offer reminders by e-mail"),
        required=False,
        help_text=_(
            "Participants may leave an address at the end of a visit. Leave it off for "
            "Prolific, SONA or MTurk: their terms forbid asking for one (the Reminders page "
            "lists who is due instead)."
        ),
    )
    reminder_closing_hours = forms.IntegerField(
        label=_("Closing reminder: hours before a window closes"),
        min_value=0,
        max_value=720,
        required=False,
        help_text=_("0: no closing reminder. The opening reminder goes when a window opens."),
    )

    def __init__(
        self, *args: Any, creating: bool = True, locked: tuple[str, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if not creating:
            del self.fields["slug"]
        # Settings that shape running sessions are shown but cannot be sent back.
        for name in locked:
            self.fields[name].disabled = True
        # A title and a description per language, where one differs from the study's own.
        for code, language in LANGUAGE_CHOICES:
            self.fields[f"title_{code}"] = forms.CharField(
                label=_("Title in %(language)s") % {"language": language},
                max_length=200,
                required=False,
                widget=forms.TextInput(attrs={"lang": code}),
                help_text=_("What participants read in this language; blank: the title above."),
            )
            self.fields[f"description_{code}"] = forms.CharField(
                label=_("Description in %(language)s") % {"language": language},
                required=False,
                widget=forms.Textarea(attrs={"rows": 2, "lang": code}),
                help_text=_("Blank: the description above."),
            )
        # One consent and one debrief text per language the platform speaks.
        for code, language in LANGUAGE_CHOICES:
            self.fields[f"consent_text_{code}"] = forms.CharField(
                label=_("Consent text (%(language)s)") % {"language": language},
                required=False,
                widget=forms.Textarea(attrs={"rows": 5, "lang": code}),
            )
        for code, language in LANGUAGE_CHOICES:
            self.fields[f"debrief_text_{code}"] = forms.CharField(
                label=_("Debrief text (%(language)s)") % {"language": language},
                required=False,
                widget=forms.Textarea(attrs={"rows": 3, "lang": code}),
                help_text=_("Blank: the task's standard debrief."),
            )

    def study_values(self) -> dict[str, Any]:
        """cleaned_data in the shape of Study's fields."""
        data = dict(self.cleaned_data)
        data["consent_text"] = {
            code: data.pop(f"consent_text_{code}").strip()
            for code, _name in LANGUAGE_CHOICES
            if data.get(f"consent_text_{code}", "").strip()
        }
        data["debrief_text"] = {
            code: data.pop(f"debrief_text_{code}").strip()
            for code, _name in LANGUAGE_CHOICES
            if data.get(f"debrief_text_{code}", "").strip()
        }
        for field in ("title", "description"):
            data[f"{field}_texts"] = {
                code: data[f"{field}_{code}"].strip()
                for code, _name in LANGUAGE_CHOICES
                if data.get(f"{field}_{code}", "").strip()
            }
        for code, _name in LANGUAGE_CHOICES:
            data.pop(f"consent_text_{code}", None)
            data.pop(f"debrief_text_{code}", None)
            data.pop(f"title_{code}", None)
            data.pop(f"description_{code}", None)
        if data.get("reminder_closing_hours") is None:
            data["reminder_closing_hours"] = DEFAULT_CLOSING_HOURS
        if data.get("lr_max") is None:
            data["lr_max"] = LR_MAX_DEFAULT
        return data

    @staticmethod
    def initial_for(study: Study) -> dict[str, Any]:
        initial: dict[str, Any] = {
            name: getattr(study, name)
            for name in STUDY_FIELDS
            # The texts per language have a field each (below).
            if name not in ("consent_text", "debrief_text", "title_texts", "description_texts")
        }
        for code, _name in LANGUAGE_CHOICES:
            initial[f"title_{code}"] = (study.title_texts or {}).get(code, "")
            initial[f"description_{code}"] = (study.description_texts or {}).get(code, "")
            initial[f"consent_text_{code}"] = study.consent_text.get(code, "")
            initial[f"debrief_text_{code}"] = study.debrief_text.get(code, "")
        return initial

    @staticmethod
    def initial_new() -> dict[str, Any]:
        return {
            "languages": ["en", "fr"],
            "scale_min": 3,
            "scale_max": 77,
            "br_mode": Study.BaseRateMode.FIXED,
            "adaptive_d_min": 6,
            "adaptive_d_max": 15,
            "min_br_view_ms": 2000,
            "min_valid_per_valence": 5,
            "lr_max": LR_MAX_DEFAULT,
            "resume_by_external_id": False,
            "collect_email": False,
            "reminder_closing_hours": DEFAULT_CLOSING_HOURS,
        }


class ArmForm(forms.Form):
    code = forms.SlugField(
        label=_("Code (in links: &arm=code)"),
        max_length=32,
        help_text=_("Letters, digits and hyphens."),
    )
    # Not required here: the service refuses an empty name and says so on this field.
    name = forms.CharField(label=_("Name"), max_length=100, required=False)


ANCHOR_CHOICES = [
    ("previous", _("the previous visit's completion")),
    ("first", _("the first visit's completion")),
    ("staff", _("a time staff set for each participant (e.g. the infusion)")),
]


class TimepointForm(forms.Form):
    label = forms.CharField(label=_("Label"), max_length=64, required=False)
    anchor = forms.ChoiceField(
        label=_("The window counts from"),
        choices=ANCHOR_CHOICES,
        initial="previous",
        required=False,  # forms written before anchors existed: previous / unchanged
        help_text=_(
            "A staff time is set on each participant's page (or by the API); until it is "
            "set, the visit waits."
        ),
    )
    opens_value = forms.DecimalField(
        label=_("Window opens after its anchor"),
        min_value=0,
        max_digits=8,
        decimal_places=2,
        initial=0,
    )
    opens_unit = forms.ChoiceField(label=_("Unit"), choices=UNIT_CHOICES, initial="hours")
    closes_value = forms.DecimalField(
        label=_("Window closes after its anchor"),
        min_value=0,
        max_digits=8,
        decimal_places=2,
        required=False,
        help_text=_("Blank: the window never closes."),
    )
    closes_unit = forms.ChoiceField(label=_("Unit"), choices=UNIT_CHOICES, initial="hours")

    def durations(self) -> tuple[timedelta, timedelta | None]:
        data = self.cleaned_data
        opens = timedelta(seconds=float(data["opens_value"]) * UNITS[data["opens_unit"]])
        closes = (
            timedelta(seconds=float(data["closes_value"]) * UNITS[data["closes_unit"]])
            if data.get("closes_value") is not None
            else None
        )
        return opens, closes

    @staticmethod
    def initial_for(
        opens: timedelta, closes: timedelta | None, label: str, anchor: str = "previous"
    ) -> dict[str, Any]:
        def split(d: timedelta) -> tuple[Any, str]:
            seconds = d.total_seconds()
            for unit in ("days", "hours", "minutes"):
                if seconds and seconds % UNITS[unit] == 0:
                    return int(seconds // UNITS[unit]), unit
            return round(seconds / 3600, 2), "hours"

        opens_value, opens_unit = split(opens)
        initial = {
            "label": label,
            "anchor": anchor,
            "opens_value": opens_value,
            "opens_unit": opens_unit,
        }
        if closes is not None:
            initial["closes_value"], initial["closes_unit"] = split(closes)
        return initial


class EventListImportForm(forms.Form):
    name = forms.CharField(label=_("Name of the list"), max_length=100)
    description = forms.CharField(label=_("Description"), max_length=500, required=False)
    file = forms.FileField(
        label=_("CSV file"),
        required=False,
        help_text=_(
            "Columns: code, text_en, base_rate (required); text_fr, source, practice (0/1)."
        ),
    )
    text = forms.CharField(
        label=_("…or paste the CSV here"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            if upload.size > 1_000_000:
                self.add_error("file", _("The file is over 1 MB."))
                return data
            raw = upload.read()
            try:
                data["csv_text"] = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error("file", _("The file is not UTF-8 text."))
        elif (data.get("text") or "").strip():
            data["csv_text"] = data["text"]
        else:
            self.add_error("file", _("Choose a CSV file or paste its text."))
        return data


class AttachListForm(forms.Form):
    event_list = forms.TypedChoiceField(label=_("Event list"), coerce=int)

    def __init__(self, *args: Any, choices: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["event_list"].choices = choices  # type: ignore[attr-defined]


class MemberForm(forms.Form):
    username = forms.CharField(label=_("Username"), max_length=150)
    role = forms.ChoiceField(
        label=_("Role"), choices=[(k, v) for k, v in ROLE_LABELS.items()], initial="viewer"
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=[(k, v) for k, v in ROLE_LABELS.items()])


class WithdrawForm(forms.Form):
    confirm = forms.BooleanField(
        label=_(
            "I understand that this participant's answers, trials, scores and recruiter id "
            "are deleted for good."
        )
    )
    reason = forms.CharField(
        label=_("Reason (kept in the audit record)"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class AnchorForm(forms.Form):
    """A participant's staff anchor (the infusion): a local date and time and its zone."""

    at = forms.DateTimeField(
        label=_("Staff time (e.g. the infusion)"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    zone = forms.CharField(
        label=_("Time zone"),
        max_length=64,
        initial="UTC",
        help_text=_("The zone of the time above, e.g. Europe/Paris (your browser's by default)."),
    )

    def clean_zone(self) -> ZoneInfo:
        name = self.cleaned_data["zone"].strip()
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise forms.ValidationError(
                _("Unknown time zone '%(zone)s'.") % {"zone": name[:64]}
            ) from None

    def moment(self) -> datetime:
        """The time entered, in its zone (DST-aware), as an aware datetime."""
        naive: datetime = self.cleaned_data["at"].replace(tzinfo=None)
        zone: ZoneInfo = self.cleaned_data["zone"]
        return naive.replace(tzinfo=zone)


class SessionFilterForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), required=False)
    flag = forms.ChoiceField(label=_("Flags"), required=False)
    arm = forms.TypedChoiceField(label=_("Arm"), required=False, coerce=int, empty_value=None)
    timepoint = forms.TypedChoiceField(
        label=_("Timepoint"), required=False, coerce=int, empty_value=None
    )
    date_from = forms.DateField(
        label=_("Created from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("Created until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    participant = forms.CharField(
        label=_("Participant (P123 or recruiter id)"), required=False, max_length=200
    )

    def __init__(self, *args: Any, arms: list[Any], timepoints: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        everything = ("", _("all"))
        self.fields["status"].choices = [everything, *STATUS_LABELS.items()]  # type: ignore[attr-defined]
        self.fields["flag"].choices = [  # type: ignore[attr-defined]
            everything,
            ("any", _("any flag")),
            ("none", _("scored, no flag")),
            ("unscored", _("not scored")),
            *((name, FLAG_LABELS[name]) for name in FLAG_NAMES),
        ]
        self.fields["arm"].choices = [everything, *((a.pk, a.name) for a in arms)]  # type: ignore[attr-defined]
        self.fields["timepoint"].choices = [  # type: ignore[attr-defined]
            everything,
            *((t.pk, t.label) for t in timepoints),
        ]


class TokenForm(forms.Form):
    name = forms.CharField(label=_("Name (what the token is for)"), max_length=100, required=False)
    scope = forms.ChoiceField(
        label=_("Scope"),
        choices=[
            ("read", _("read: download data")),
            ("write", _("write: also import and rescore")),
        ],
        initial="read",
    )
    expires_days = forms.IntegerField(
        label=_("Expires after (days)"),
        min_value=1,
        max_value=3650,
        required=False,
        initial=DEFAULT_EXPIRES_DAYS,
        help_text=_("Blank: never expires."),
    )
