"""Studies, arms, timepoints, event lists, participants, sessions and responses."""

import uuid
from datetime import timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone

from protocol import phases
from protocol.phases import STEP_FLAGS
from scoring.columns import DEFAULT_POLARITY, LR_MAX_DEFAULT, POLARITIES
from trials.tokens import new_token

# The phases each check constraint covers, in the order the constraints were first written
# (a different order would be a migration that rebuilds them on the responses table).
_PERCENT_PHASES = [
    *phases.names(source=phases.RangeSource.STUDY_SCALE),
    *(p.name for p in phases.PHASES if p.range == phases.PERCENT),
]
_RATING_PHASES = [p.name for p in phases.PHASES if p.range == phases.RATING_1_6]
_ALL_PHASES = [*_PERCENT_PHASES, *_RATING_PHASES]
# The response's phase choices, labelled as the first migration has them ("ebr1": "Ebr1").
PHASE_CHOICES = [(p.name, p.name.title()) for p in phases.PHASES]


def default_languages() -> list[str]:
    return ["en", "fr"]


class Study(models.Model):
    class BaseRateMode(models.TextChoices):
        FIXED = "fixed", "fixed"
        ADAPTIVE = "adaptive", "adaptive"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        PAUSED = "paused", "paused"
        CLOSED = "closed", "closed"

    slug = models.SlugField(max_length=64, unique=True)
    # The title and the description in the study's own words; the *_texts give them per
    # language ({language: text}, like the consent text) where a language has its own.
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    title_texts = models.JSONField(default=dict, blank=True, help_text="{language: title}")
    description_texts = models.JSONField(
        default=dict, blank=True, help_text="{language: description}"
    )
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    languages = models.JSONField(default=default_languages)
    consent_text = models.JSONField(default=dict, blank=True, help_text="{language: text}")
    debrief_text = models.JSONField(default=dict, blank=True, help_text="{language: text}")
    scale_min = models.PositiveSmallIntegerField(default=3)
    scale_max = models.PositiveSmallIntegerField(default=77)
    br_mode = models.CharField(max_length=8, choices=BaseRateMode.choices, default="fixed")
    adaptive_d_min = models.PositiveSmallIntegerField(default=6)
    adaptive_d_max = models.PositiveSmallIntegerField(default=15)
    collect_ebr = models.BooleanField(default=False)
    collect_confidence = models.BooleanField(default=False)
    memory_test = models.BooleanField(default=False)
    ratings = models.BooleanField(default=False)
    show_debrief = models.BooleanField(default=False)
    min_br_view_ms = models.PositiveIntegerField(default=2000)
    min_valid_per_valence = models.PositiveSmallIntegerField(default=5)
    # PROTOCOL.md: "Learning rates are bounded to [0, 1] unless a study asks otherwise";
    # the fits (scoring.fitting) bound every rate, M2's effective one included, to [0, lr_max].
    lr_max = models.FloatField(
        default=LR_MAX_DEFAULT,
        help_text="Upper bound of every fitted learning rate (1: no overshoot past the base rate)",
    )
    completion_code = models.CharField(
        max_length=64,
        blank=True,
        help_text="One code for every participant; blank: one per session",
    )
    redirect_url = models.URLField(max_length=500, blank=True)
    # Safe default off: a known recruiter id then resumes only in the browser that enrolled
    # it (signed cookie); see trials.services.enrolment.external_id_resumable.
    resume_by_external_id = models.BooleanField(
        default=False,
        help_text="A known recruiter id of 24+ random characters (Prolific's) resumes its "
        "participant's visits from any browser. Off: only in the browser that enrolled it; "
        "elsewhere the personal return link is the way back.",
    )
    # Reminders (reminders app). Off by default: recruiters such as Prolific and SONA forbid
    # asking their participants for an e-mail address (reminders.services.EMAIL_FORBIDDEN_SOURCES).
    collect_email = models.BooleanField(default=False)
    # The closing reminder goes this many hours before a window closes; 0: none.
    reminder_closing_hours = models.PositiveSmallIntegerField(default=24)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(
                condition=Q(scale_min__lt=models.F("scale_max")) & Q(scale_max__lte=100),
                name="study_scale_valid",
            ),
            models.CheckConstraint(
                condition=Q(adaptive_d_min__gte=1)
                & Q(adaptive_d_min__lte=models.F("adaptive_d_max")),
                name="study_adaptive_d_valid",
            ),
            models.CheckConstraint(
                condition=Q(br_mode__in=["fixed", "adaptive"]), name="study_br_mode_valid"
            ),
            models.CheckConstraint(
                condition=Q(lr_max__gt=0) & Q(lr_max__lte=2), name="study_lr_max_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def debrief_required(self) -> bool:
        return self.show_debrief or self.br_mode == self.BaseRateMode.ADAPTIVE

    def text_for(self, field: dict[str, str], language: str) -> str:
        return field.get(language) or field.get("en") or next(iter(field.values()), "")

    def title_in(self, language: str) -> str:
        """The title a participant reads in this language: its own, else the study's title."""
        return (self.title_texts or {}).get(language) or self.title

    def description_in(self, language: str) -> str:
        """The description in this language: its own, else the study's description."""
        return (self.description_texts or {}).get(language) or self.description


class Arm(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="arms")
    code = models.SlugField(max_length=32)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["study_id", "id"]
        constraints = [models.UniqueConstraint(fields=["study", "code"], name="arm_code_unique")]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.code}"


class Timepoint(models.Model):
    """A visit; its window opens and closes relative to its anchor (see trials.visits)."""

    class Anchor(models.TextChoices):
        PREVIOUS = "previous", "previous visit's completion"
        FIRST = "first", "first visit's completion"
        STAFF = "staff", "staff time (e.g. the infusion), set per participant"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="timepoints")
    order = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=64)
    # The first timepoint always opens at enrolment, whatever this says.
    anchor = models.CharField(max_length=8, choices=Anchor.choices, default=Anchor.PREVIOUS)
    opens_after = models.DurationField(default=timedelta(0))
    closes_after = models.DurationField(null=True, blank=True, help_text="blank: never closes")

    class Meta:
        ordering = ["study_id", "order"]
        constraints = [
            models.UniqueConstraint(fields=["study", "order"], name="timepoint_order_unique"),
            models.CheckConstraint(
                condition=Q(closes_after__isnull=True)
                | Q(closes_after__gt=models.F("opens_after")),
                name="timepoint_window_valid",
            ),
            models.CheckConstraint(
                condition=Q(anchor__in=["previous", "first", "staff"]),
                name="timepoint_anchor_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug}/{self.label}"


class EventList(models.Model):
    """A list of events. It belongs to the members of the study it was imported for (and of
    the studies it is attached to); `shared` lists (the demo lists, lists the server's
    operators import with `import_event_list`) are offered to every researcher."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    shared = models.BooleanField(default=False)
    owner_study = models.ForeignKey(
        "Study", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name


class Event(models.Model):
    event_list = models.ForeignKey(EventList, on_delete=models.CASCADE, related_name="events")
    code = models.CharField(max_length=32)
    texts = models.JSONField(help_text="{language: text}")
    base_rate = models.PositiveSmallIntegerField()
    # PROTOCOL.md "Score version 2": for a positive event, good news is BR > E1.
    polarity = models.CharField(
        max_length=8, choices=[(p, p) for p in POLARITIES], default=DEFAULT_POLARITY
    )
    source = models.TextField(blank=True)
    practice = models.BooleanField(default=False)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["event_list_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["event_list", "code"], name="event_code_unique"),
            models.CheckConstraint(condition=Q(base_rate__lte=100), name="event_base_rate_range"),
            models.CheckConstraint(
                condition=Q(polarity__in=list(POLARITIES)), name="event_polarity_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def text(self, language: str) -> str:
        return self.texts.get(language) or self.texts.get("en") or self.code


class StudyEventList(models.Model):
    """The lists a study uses, in Latin-square order."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="study_lists")
    event_list = models.ForeignKey(EventList, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["study_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "position"], name="study_list_position_unique"
            ),
            models.UniqueConstraint(fields=["study", "event_list"], name="study_list_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}:{self.position}"


class Participant(models.Model):
    # Indexes fit the access paths: (study, arm) and (study, sequence) below serve the study,
    # and the token's unique constraint serves equality only (no LIKE index, as `unique=True`
    # would add on PostgreSQL).
    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="participants", db_index=False
    )
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="participants")
    token = models.CharField(max_length=64, default=new_token, editable=False)
    # Row of the Latin square: which list each timepoint gets.
    sequence = models.PositiveSmallIntegerField(default=0)
    language = models.CharField(max_length=8, default="en")
    imported = models.BooleanField(default=False)
    consented_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    # The staff anchor of the `staff`-anchored timepoints (the infusion), UTC.
    staff_anchor_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["token"], name="participant_token_unique")]
        indexes = [
            models.Index(fields=["study", "arm"]),
            models.Index(fields=["study", "sequence"]),
        ]

    def __str__(self) -> str:
        return f"P{self.pk}"


class ParticipantIdentity(models.Model):
    """A recruiter's id (Prolific, SONA, a clinic code): kept apart from data and scores."""

    participant = models.OneToOneField(
        Participant, on_delete=models.CASCADE, related_name="identity"
    )
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=32)
    external_id = models.CharField(max_length=200)
    params = models.JSONField(default=dict, blank=True)
    # Enrolled with an id already in use, without proof of being its owner (issue 14.2): a
    # new participant, flagged for the lab, never the existing one's session.
    duplicate = models.BooleanField(default=False)
    # SHA-256 of the enrolling browser's random key (cookie): the proof that lets the same
    # browser come back with this id. Blank for imports and API clients without the cookie.
    browser_key = models.CharField(max_length=64, blank=True, editable=False)

    class Meta:
        verbose_name_plural = "participant identities"
        constraints = [
            models.UniqueConstraint(
                fields=["study", "external_id"],
                condition=Q(duplicate=False),
                name="external_id_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.source} id of participant {self.participant_id}"


class WithdrawnIdentity(models.Model):
    """A withdrawn participant's recruiter id, kept only as a keyed digest (never the id).

    Withdrawal deletes the id itself; this digest is what makes the withdrawal sticky: the
    same id enrolling again is refused until staff reinstate it (which deletes the row).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    # The withdrawn participant's row stays (as a count), so the digest can point at it.
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "digest"], name="withdrawn_identity_unique")
        ]

    def __str__(self) -> str:
        return f"withdrawn id of participant {self.participant_id}"


class Session(models.Model):
    class Status(models.TextChoices):
        CREATED = "created", "created"
        IN_PROGRESS = "in_progress", "in progress"
        COMPLETED = "completed", "completed"
        ABANDONED = "abandoned", "abandoned"

    # (participant, timepoint) below is the participant's index; the token's unique constraint
    # is the index of every participant request (equality only, no LIKE index).
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="sessions", db_index=False
    )
    timepoint = models.ForeignKey(Timepoint, on_delete=models.PROTECT, related_name="sessions")
    event_list = models.ForeignKey(EventList, on_delete=models.PROTECT, related_name="sessions")
    token = models.CharField(max_length=64, default=new_token, editable=False)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATED)
    language = models.CharField(max_length=8, default="en")
    # {"practice": [[event_id, code], ...], "order1": [...], "order2": [...]}: drawn once.
    plan = models.JSONField()
    # How many steps of the plan are answered; the next step is steps[step_index].
    step_index = models.PositiveIntegerField(default=0)
    imported = models.BooleanField(default=False)
    completion_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token"], name="session_token_unique"),
            models.UniqueConstraint(
                fields=["participant", "timepoint"], name="session_per_timepoint_unique"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=["created", "in_progress", "completed", "abandoned"],
                ),
                name="session_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(completed_at__isnull=False),
                name="session_completed_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "completed_at"])]

    def __str__(self) -> str:
        return f"S{self.pk}"


class Trial(models.Model):
    """One event within a session: its positions and the base rate it showed."""

    # trial_unique (session, event) is the session's index.
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="trials", db_index=False
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    practice = models.BooleanField(default=False)
    block1_position = models.PositiveSmallIntegerField()
    block2_position = models.PositiveSmallIntegerField(null=True, blank=True)
    br = models.PositiveSmallIntegerField(null=True, blank=True)
    br_mode = models.CharField(max_length=8)
    # Adaptive mode: the valence this trial is meant to give (half good, half bad).
    planned_valence = models.CharField(max_length=4, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "event"], name="trial_unique"),
            models.CheckConstraint(condition=Q(br__lte=100), name="trial_br_range"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.event_id}"


class Response(models.Model):
    # response_per_phase_unique (session, event, phase) is the session's index: one index
    # fewer to update on every answer.
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="responses", db_index=False
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    phase = models.CharField(max_length=12, choices=PHASE_CHOICES)
    value = models.SmallIntegerField()
    rt_ms = models.PositiveIntegerField()
    onset_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    client_id = models.UUIDField(unique=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "event", "phase"], name="response_per_phase_unique"
            ),
            # The study's own range (default 3-77) is checked by the service against the
            # study row; the database still refuses anything outside a percentage.
            models.CheckConstraint(
                condition=~Q(phase__in=_PERCENT_PHASES)
                | Q(value__gte=phases.PERCENT.low, value__lte=phases.PERCENT.high),
                name="response_estimate_is_percent",
            ),
            models.CheckConstraint(
                condition=~Q(phase__in=_RATING_PHASES)
                | Q(value__gte=phases.RATING_1_6.low, value__lte=phases.RATING_1_6.high),
                name="response_rating_1_6",
            ),
            models.CheckConstraint(condition=Q(phase__in=_ALL_PHASES), name="response_phase_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.event_id}:{self.phase}"


def study_config(study: Study) -> dict[str, Any]:
    """The flags that shape a session's steps (see trials.steps)."""
    return {flag: getattr(study, flag) for flag in STEP_FLAGS}


class StudyMembership(models.Model):
    """A researcher's role in a study: owner, analyst or viewer."""

    class Role(models.TextChoices):
        OWNER = "owner", "owner"
        ANALYST = "analyst", "analyst"
        VIEWER = "viewer", "viewer"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        "auth.User", on_delete=models.CASCADE, related_name="study_memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["study", "user"], name="membership_unique"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "analyst", "viewer"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role} of {self.study_id}"


class ImportJob(models.Model):
    """A trials import too large to run inside a request: a worker checks and stores it.

    The API answers 202 with this job's status URL; the status gives the state, the rows
    checked so far, then the synchronous import's result or its error (the same shapes).
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    size = models.PositiveIntegerField(help_text="Bytes of the file.")
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_checked = models.PositiveIntegerField(default=0)
    # Starts of the task: a worker killed mid-import redelivers it; a few times at most.
    attempts = models.PositiveSmallIntegerField(default=0)
    result = models.JSONField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "queued_at"], name="importjob_state_queued")]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=["queued", "running", "done", "failed"]),
                name="importjob_state_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"import {self.pk} ({self.state})"


class ImportUpload(models.Model):
    """The file of an ImportJob until its worker has finished with it (then deleted).

    A bytea row: the web and worker containers share the database, not a disk.
    """

    job = models.OneToOneField(
        ImportJob, on_delete=models.CASCADE, primary_key=True, related_name="upload"
    )
    data = models.BinaryField()

    def __str__(self) -> str:
        return f"file of import {self.job_id}"
