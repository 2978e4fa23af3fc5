"""Instruments (questionnaires, rating scales) as data; their attachment to a study's
timepoints; the answers (a participant's or a clinician's) and the instruments' scores."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from instruments.definition import Instrument as Definition, instrument_parse
from trials.models import Participant, Session, Study, Timepoint

KIND_CHOICES = [("self_report", "self-report"), ("clinician", "clinician-rated")]


class Instrument(models.Model):
    """One instrument file as imported (docs/instruments.md); `definition` is the file."""

    code = models.SlugField(max_length=32)
    version = models.CharField(max_length=32)
    kind = models.CharField(max_length=12, choices=KIND_CHOICES)
    name = models.JSONField(help_text="{language: name}")
    definition = models.JSONField()
    source = models.TextField()
    licence = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.UniqueConstraint(fields=["code"], name="instrument_code_unique"),
            models.CheckConstraint(
                condition=Q(kind__in=["self_report", "clinician"]), name="instrument_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.code

    def parsed(self) -> Definition:
        """The definition as the pure module reads it (it was valid when stored)."""
        return instrument_parse(self.definition)


class StudyInstrument(models.Model):
    """An instrument given at one timepoint of a study, before or after the task."""

    class Position(models.TextChoices):
        BEFORE = "before", "before the task"
        AFTER = "after", "after the task"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="instruments")
    timepoint = models.ForeignKey(Timepoint, on_delete=models.CASCADE, related_name="instruments")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    # Clinician-rated instruments are entered by staff, not in the session: no position.
    position = models.CharField(max_length=8, choices=Position.choices, default=Position.AFTER)
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["timepoint__order", "position", "order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["timepoint", "instrument"], name="study_instrument_unique"
            ),
            models.CheckConstraint(
                condition=Q(position__in=["before", "after"]), name="study_instrument_position"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.timepoint}:{self.instrument_id}"


class Rating(models.Model):
    """A clinician's rating of a participant at a timepoint (its items are ItemAnswers)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="ratings")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    rated_at = models.DateTimeField()
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "instrument"], name="rating_unique")
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} of session {self.session_id}"


class ItemAnswer(models.Model):
    """One answered item: by the participant in the session, or by a clinician."""

    class Source(models.TextChoices):
        PARTICIPANT = "participant", "participant"
        CLINICIAN = "clinician", "clinician"

    # item_answer_unique (session, instrument, item) is the session's index.
    session = models.ForeignKey(
        Session, on_delete=models.CASCADE, related_name="item_answers", db_index=False
    )
    # Denormalised from the session: the exports and scores group by participant.
    participant = models.ForeignKey(Participant, on_delete=models.CASCADE, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    item = models.CharField(max_length=32)
    # Null: an optional item the participant skipped.
    value = models.SmallIntegerField(null=True, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices)
    rt_ms = models.PositiveIntegerField(null=True, blank=True)
    onset_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField()
    client_id = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "instrument", "item"], name="item_answer_unique"
            ),
            models.UniqueConstraint(
                fields=["client_id"],
                condition=Q(client_id__isnull=False),
                name="item_answer_client_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(source__in=["participant", "clinician"]),
                name="item_answer_source_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.item}"


class InstrumentScore(models.Model):
    """An instrument's total and subscales for one session (participant x timepoint)."""

    session = models.ForeignKey(Session, on_delete=models.CASCADE, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    score_version = models.PositiveSmallIntegerField()
    total = models.FloatField(null=True, blank=True)
    n_answered = models.PositiveSmallIntegerField()
    n_missing = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=12)
    subscales = models.JSONField(default=dict)
    scored_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "instrument", "score_version"],
                name="instrument_score_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["complete", "prorated", "incomplete"]),
                name="instrument_score_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} v{self.score_version} of session {self.session_id}"
