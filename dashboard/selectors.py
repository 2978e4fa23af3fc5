"""Reads of the dashboard: counts, funnels, result data, session tables.

Every function runs a fixed number of queries whatever the number of sessions: counts are
SQL aggregates grouped by arm and timepoint, score figures are read as JSON keys in one
query, and tables declare their joins. The tests in tests/dashboard pin those numbers.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import (
    Count,
    F,
    FilteredRelation,
    FloatField,
    Max,
    Q,
    QuerySet,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from common.scalars import json_scalar
from dashboard.models import Withdrawal
from scoring.columns import FLAG_NAMES, SCORE_VERSION
from scoring.models import Score
from scoring.selectors import scored_fingerprint, scored_sessions, trials_frame
from trials.access import role_of, studies_for_member

if TYPE_CHECKING:
    import pandas as pd

from trials.models import (
    Arm,
    Participant,
    ParticipantIdentity,
    Session,
    Study,
    Timepoint,
    study_config,
)
from trials.selectors import study_visits
from trials.steps import session_steps
from trials.visits import VisitStatus, visit_due

DONE = Score.Status.DONE
# Lines of more participants than this make the trajectory chart a grey blur and slow
# to draw; a fixed random sample is drawn instead (the mean lines use everyone).
MAX_TRAJECTORIES = 300
IN_PROGRESS_SHOWN = 25
OPENING_SHOWN = 100


# ---------------------------------------------------------------- study list


@dataclass(frozen=True)
class StudyRow:
    study: Study
    role: str
    enrolled: int
    completed: int
    scored: int
    last_activity: datetime | None


def study_list(*, user: Any) -> list[StudyRow]:
    """The user's studies with their counts (four queries however many studies)."""
    studies = list(studies_for_member(user).order_by("-created_at", "pk"))
    ids = [s.pk for s in studies]
    if not ids:
        return []
    enrolled = dict(
        Participant.objects.filter(study_id__in=ids, withdrawn_at__isnull=True)
        .values("study_id")
        .annotate(n=Count("id"))
        .values_list("study_id", "n")
    )
    sessions = {
        row["study"]: row
        for row in Session.objects.filter(
            participant__study_id__in=ids, participant__withdrawn_at__isnull=True
        )
        .values(study=F("participant__study_id"))
        .annotate(
            completed=Count("id", filter=Q(status=Session.Status.COMPLETED)),
            last_activity=Max("last_activity_at"),
            last_created=Max("created_at"),
        )
    }
    scored = dict(
        Score.objects.filter(
            session__participant__study_id__in=ids,
            session__participant__withdrawn_at__isnull=True,
            score_version=SCORE_VERSION,
            status=DONE,
        )
        .values(study=F("session__participant__study_id"))
        .annotate(n=Count("id"))
        .values_list("study", "n")
    )
    rows = []
    for study in studies:
        agg = sessions.get(study.pk, {})
        moments = [m for m in (agg.get("last_activity"), agg.get("last_created")) if m]
        rows.append(
            StudyRow(
                study=study,
                role=role_of(study),
                enrolled=enrolled.get(study.pk, 0),
                completed=agg.get("completed", 0),
                scored=scored.get(study.pk, 0),
                last_activity=max(moments) if moments else None,
            )
        )
    return rows


# ---------------------------------------------------------------- design


@dataclass(frozen=True)
class Design:
    arms: list[Arm]
    timepoints: list[Timepoint]

    def arm_name(self, pk: int) -> str:
        return next((a.name for a in self.arms if a.pk == pk), "?")

    def timepoint_label(self, pk: int) -> str:
        return next((t.label for t in self.timepoints if t.pk == pk), "?")


def study_design(*, study: Study) -> Design:
    """Arms (creation order) and timepoints (visit order): two queries."""
    return Design(
        arms=list(Arm.objects.filter(study=study).order_by("id")),
        timepoints=list(Timepoint.objects.filter(study=study).order_by("order")),
    )


# ---------------------------------------------------------------- overview

FUNNEL_STEPS = ("enrolled", "started", "completed", "abandoned", "scored", "flagged")


@dataclass
class Overview:
    rows: list[dict[str, Any]]
    totals: dict[str, int]
    flag_totals: dict[str, int]
    withdrawn: int
    in_progress: list[dict[str, Any]]
    opening_today: list[dict[str, Any]]  # the visits due today (see study_visit_summary)
    opening_more: bool
    last_activity: datetime | None
    generated_at: datetime = field(default_factory=timezone.now)
    visits: list[dict[str, Any]] = field(default_factory=list)


def study_overview(*, study: Study, design: Design, now: datetime | None = None) -> Overview:
    """Funnel per arm x timepoint, sessions in progress, visits per arm x timepoint and the
    visits due today (7 queries)."""
    now = now or timezone.now()
    live = Q(participant__study=study, participant__withdrawn_at__isnull=True)
    sessions = {
        (r["participant__arm_id"], r["timepoint_id"]): r
        for r in Session.objects.filter(live)
        .values("participant__arm_id", "timepoint_id")
        .annotate(
            enrolled=Count("id"),
            started=Count("id", filter=Q(started_at__isnull=False)),
            in_progress=Count("id", filter=Q(status=Session.Status.IN_PROGRESS)),
            completed=Count("id", filter=Q(status=Session.Status.COMPLETED)),
            abandoned=Count("id", filter=Q(status=Session.Status.ABANDONED)),
            last_activity=Max("last_activity_at"),
        )
    }
    scores = {
        (r["session__participant__arm_id"], r["session__timepoint_id"]): r
        for r in _score_counts(study)
    }
    withdrawn = Participant.objects.filter(study=study, withdrawn_at__isnull=False).count()

    rows: list[dict[str, Any]] = []
    totals = Counter[str]()
    flag_totals = Counter[str]()
    for timepoint in design.timepoints:
        for arm in design.arms:
            s = sessions.get((arm.pk, timepoint.pk), {})
            c = scores.get((arm.pk, timepoint.pk), {})
            row = {
                "arm": arm.name,
                "arm_id": arm.pk,
                "timepoint": timepoint.label,
                "timepoint_id": timepoint.pk,
                "enrolled": s.get("enrolled", 0),
                "started": s.get("started", 0),
                "in_progress": s.get("in_progress", 0),
                "completed": s.get("completed", 0),
                "abandoned": s.get("abandoned", 0),
                "scored": c.get("scored", 0),
                "flagged": c.get("flagged", 0),
                "failed": c.get("failed", 0),
                "flags": {name: c.get(f"flag_{name}", 0) for name in FLAG_NAMES},
            }
            rows.append(row)
            for key in (*FUNNEL_STEPS, "in_progress", "failed"):
                totals[key] += row[key]
            for name, n in row["flags"].items():
                flag_totals[name] += n
    last = [r["last_activity"] for r in sessions.values() if r["last_activity"]]
    visits, opening, more = study_visit_summary(study=study, design=design, now=now)
    return Overview(
        rows=rows,
        totals={k: totals[k] for k in (*FUNNEL_STEPS, "in_progress", "failed")},
        flag_totals={name: flag_totals[name] for name in FLAG_NAMES},
        withdrawn=withdrawn,
        in_progress=sessions_in_progress(study=study),
        opening_today=opening,
        opening_more=more,
        last_activity=max(last) if last else None,
        visits=visits,
    )


def _score_counts(study: Study) -> QuerySet[Score, dict[str, Any]]:
    done = Q(status=DONE)
    # A flag is matched in the JSON text ('"fast_rt"'), which PostgreSQL and SQLite both
    # support; jsonb containment would not run on the embedded SQLite default.
    per_flag = {
        f"flag_{name}": Count("id", filter=done & Q(flags__icontains=f'"{name}"'))
        for name in FLAG_NAMES
    }
    return (
        Score.objects.filter(
            session__participant__study=study,
            session__participant__withdrawn_at__isnull=True,
            score_version=SCORE_VERSION,
        )
        .values("session__participant__arm_id", "session__timepoint_id")
        .annotate(
            scored=Count("id", filter=done),
            flagged=Count("id", filter=done & Q(flags__icontains='"')),
            failed=Count("id", filter=Q(status=Score.Status.FAILED)),
            **per_flag,
        )
    )


def sessions_in_progress(*, study: Study) -> list[dict[str, Any]]:
    """The most recently active unfinished sessions with their progress (one query)."""
    config = study_config(study)
    rows: list[dict[str, Any]] = [
        dict(row)
        for row in Session.objects.filter(
            participant__study=study,
            participant__withdrawn_at__isnull=True,
            status=Session.Status.IN_PROGRESS,
        )
        .order_by(F("last_activity_at").desc(nulls_last=True), "-pk")
        .values(
            "pk",
            "participant_id",
            "participant__arm__name",
            "timepoint__label",
            "step_index",
            "plan",
            "started_at",
            "last_activity_at",
        )[:IN_PROGRESS_SHOWN]
    ]
    for row in rows:
        total = len(session_steps(row.pop("plan"), config))
        row["steps_total"] = total
        row["percent"] = round(100 * row["step_index"] / total) if total else 0
    return rows


VISIT_STATUSES = tuple(str(status) for status in VisitStatus)


def study_visit_summary(
    *, study: Study, design: Design, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], bool]:
    """Visits per arm x timepoint (done, open, upcoming, waiting_anchor, missed, due_today)
    and the visits due today, from trials.visits (three queries).

    "Due today": a return visit (not the first) not done whose window is open at some moment
    of today (the server's day), whether it opened earlier or opens later today.
    """
    day_start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    day_end = day_start + timedelta(days=1)
    counts: dict[tuple[int, int], Counter[str]] = {}
    due: list[dict[str, Any]] = []
    timepoint_ids: dict[int, int] = {t.order: t.pk for t in design.timepoints}
    for row in study_visits(study=study, now=now):
        arm_id = row.participant.arm_id
        for visit in row.visits:
            key = (arm_id, timepoint_ids[visit.timepoint.order])
            tally = counts.setdefault(key, Counter())
            tally[str(visit.status)] += 1
            # Due: a return visit (the first one is the enrolment, open until done).
            first = visit.timepoint.order == row.visits[0].timepoint.order
            if not first and visit_due(visit, day_start=day_start, day_end=day_end):
                tally["due_today"] += 1
                assert visit.opens_at is not None  # visit_due needs a known window
                due.append(
                    {
                        "participant_id": row.participant.pk,
                        "arm": row.participant.arm.name,
                        "timepoint": visit.timepoint.label,
                        "opens_at": visit.opens_at,
                        "closes_at": visit.closes_at,
                        "open_now": visit.status == VisitStatus.OPEN,
                    }
                )
    rows = []
    for timepoint in design.timepoints:
        for arm in design.arms:
            tally = counts.get((arm.pk, timepoint.pk), Counter())
            rows.append(
                {
                    "arm": arm.name,
                    "arm_id": arm.pk,
                    "timepoint": timepoint.label,
                    "timepoint_id": timepoint.pk,
                    **{status: tally[status] for status in (*VISIT_STATUSES, "due_today")},
                }
            )
    due.sort(key=lambda r: (r["opens_at"], r["participant_id"]))
    return rows, due[:OPENING_SHOWN], len(due) > OPENING_SHOWN


# ---------------------------------------------------------------- results

RESULT_FIELDS = (
    "update_good",
    "update_bad",
    "update_bias",
    "update_bias_ee",
    "alpha_good",
    "alpha_bad",
    "m1_lr_good",
    "m1_lr_bad",
    "best_model",
)
NUMBERS = RESULT_FIELDS[:-1]
MODELS = ("M0", "M1", "M2")


@dataclass
class Results:
    n_sessions: int
    n_participants: int
    fingerprint: str
    groups: list[dict[str, Any]]
    main: list[dict[str, Any]]
    bias_bins: list[dict[str, Any]]
    bias_bin_width: float
    # The same histogram of update_bias_ee (score version 2): the figure switches.
    bias_ee_bins: list[dict[str, Any]]
    bias_ee_bin_width: float
    models: list[dict[str, Any]]
    per_session: bool
    lr_points: list[dict[str, Any]] = field(default_factory=list)
    trajectories: list[dict[str, Any]] = field(default_factory=list)
    trajectory_means: list[dict[str, Any]] = field(default_factory=list)
    trajectories_shown: int = 0
    trajectories_total: int = 0


def study_results(*, study: Study, design: Design, per_session: bool) -> Results:
    """Every figure of the results page from two queries over the scores.

    `per_session` adds the charts that show one mark per session or participant
    (LR_good vs LR_bad, trajectories); viewers get aggregates only. On 5,000 sessions
    the work is kept in SQL and NumPy: arms and timepoints stay integer ids until the
    few output rows are labelled (pandas' Arrow strings are slow to iterate).
    """
    import pandas as pd

    # Numbers are cast in SQL (->> then ::double precision): decoding one JSON value per
    # cell in Python was two thirds of the page's time on 5,000 sessions.
    numbers = {f"r_{name}": Cast(KT(f"values__{name}"), FloatField()) for name in NUMBERS}
    rows = list(
        scored_sessions(study=study)
        .order_by("session_id")
        .annotate(**numbers, r_best_model=KT("values__best_model"))
        .values_list(
            "session_id",
            "session__participant_id",
            "session__participant__arm_id",
            "session__timepoint_id",
            *numbers,
            "r_best_model",
        )
    )
    _n, fingerprint = scored_fingerprint(study=study)
    frame = pd.DataFrame(
        rows, columns=["session", "participant", "arm_id", "timepoint_id", *NUMBERS, "best_model"]
    )
    labels = _Labels(design)
    results = Results(
        n_sessions=len(frame),
        n_participants=int(frame["participant"].nunique()),
        fingerprint=fingerprint,
        groups=_groups(frame, labels),
        main=[],
        bias_bins=[],
        bias_bin_width=0.0,
        bias_ee_bins=[],
        bias_ee_bin_width=0.0,
        models=_model_shares(frame, labels),
        per_session=per_session,
    )
    results.main = _main_figure(results.groups)
    results.bias_bins, results.bias_bin_width = _bias_histogram(frame, labels)
    results.bias_ee_bins, results.bias_ee_bin_width = _bias_histogram(
        frame, labels, measure="update_bias_ee"
    )
    if per_session:
        _add_per_session(results, frame, labels, study)
    return results


class _Labels:
    """Names and ranks of a design's arms and timepoints, by id."""

    def __init__(self, design: Design) -> None:
        self.arm = {a.pk: a.name for a in design.arms}
        self.arm_rank = {a.pk: i for i, a in enumerate(design.arms)}
        self.timepoint = {t.pk: t.label for t in design.timepoints}
        self.order = {t.pk: t.order for t in design.timepoints}


def _groups(frame: pd.DataFrame, labels: _Labels) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    # Imported here: scoring.group loads SciPy, which no other page needs.
    from scoring.group import group_summary

    by_id = frame[["arm_id", "timepoint_id", *NUMBERS]].rename(
        columns={"arm_id": "arm", "timepoint_id": "timepoint"}
    )
    out = []
    for record in group_summary(by_id).to_dict(orient="records"):
        arm_id, timepoint_id = int(record["arm"]), int(record["timepoint"])
        row: dict[str, Any] = {str(k): json_scalar(v) for k, v in record.items()}
        row.update(
            arm=labels.arm.get(arm_id, "?"),
            timepoint=labels.timepoint.get(timepoint_id, "?"),
            tp_order=labels.order.get(timepoint_id, 0),
            arm_rank=labels.arm_rank.get(arm_id, 0),
        )
        out.append(row)
    out.sort(key=lambda r: (r["tp_order"], r["arm_rank"]))
    return out


def _main_figure(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Long form of the paper's figure: mean update +- SEM per arm x timepoint x valence."""
    out = []
    for g in groups:
        for valence in ("good", "bad"):
            mean, sem = g[f"update_{valence}_mean"], g[f"update_{valence}_sem"]
            out.append(
                {
                    "arm": g["arm"],
                    "timepoint": g["timepoint"],
                    "tp_order": g["tp_order"],
                    "valence": valence,
                    "mean": mean,
                    "sem": sem,
                    "low": mean - sem if mean is not None and sem is not None else None,
                    "high": mean + sem if mean is not None and sem is not None else None,
                    "n": g["n_sessions"],
                }
            )
    return out


def _nice_width(span: float, target_bins: int = 24) -> float:
    """A round bin width (1, 2, 2.5, 5 x 10^k) giving about target_bins bins, at least 1.

    A bin finer than one percentage point says nothing the estimates can resolve.
    """
    raw = max(span / target_bins, 1.0)
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _bias_histogram(
    frame: pd.DataFrame, labels: _Labels, measure: str = "update_bias"
) -> tuple[list[dict[str, Any]], float]:
    """Counts of sessions per bin of `measure` (a bias), per arm x timepoint: aggregates only."""
    import numpy as np

    values = frame[measure].to_numpy(dtype=float)
    finite = np.isfinite(values)
    if not finite.any():
        return [], 0.0
    low, high = float(values[finite].min()), float(values[finite].max())
    width = _nice_width(high - low)
    start = math.floor(low / width) * width
    keys = np.column_stack(
        [
            frame["arm_id"].to_numpy(dtype=np.int64)[finite],
            frame["timepoint_id"].to_numpy(dtype=np.int64)[finite],
            np.floor((values[finite] - start) / width).astype(np.int64),
        ]
    )
    cells, counts = np.unique(keys, axis=0, return_counts=True)
    out = [
        {
            "arm": labels.arm.get(int(arm), "?"),
            "timepoint": labels.timepoint.get(int(tp), "?"),
            "tp_order": labels.order.get(int(tp), 0),
            "bin_start": round(start + int(b) * width, 6),
            "bin_end": round(start + (int(b) + 1) * width, 6),
            "count": int(n),
        }
        for (arm, tp, b), n in zip(cells.tolist(), counts.tolist(), strict=True)
    ]
    out.sort(key=lambda r: (r["tp_order"], r["arm"], r["bin_start"]))
    return out, width


def _model_shares(frame: pd.DataFrame, labels: _Labels) -> list[dict[str, Any]]:
    """Share of sessions won by M0 / M1 / M2 per arm x timepoint."""
    if frame.empty:
        return []
    fitted = frame[frame["best_model"].isin(MODELS)]
    counts = Counter(
        zip(
            fitted["arm_id"].tolist(),
            fitted["timepoint_id"].tolist(),
            fitted["best_model"].astype(object).tolist(),
            strict=True,
        )
    )
    totals = Counter[tuple[int, int]]()
    for (arm, tp, _model), n in counts.items():
        totals[(arm, tp)] += n
    out = [
        {
            "group": f"{labels.arm.get(arm, '?')} · {labels.timepoint.get(tp, '?')}",
            "arm": labels.arm.get(arm, "?"),
            "timepoint": labels.timepoint.get(tp, "?"),
            "tp_order": labels.order.get(tp, 0),
            "arm_rank": labels.arm_rank.get(arm, 0),
            "model": model,
            "n": n,
            "share": n / totals[(arm, tp)],
        }
        for (arm, tp, model), n in counts.items()
    ]
    out.sort(key=lambda r: (r["tp_order"], r["arm_rank"], r["model"]))
    return out


def _records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Column lists to row dicts (much faster than DataFrame.to_dict on Arrow strings)."""
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _add_per_session(results: Results, frame: pd.DataFrame, labels: _Labels, study: Study) -> None:
    lr = frame.dropna(subset=["m1_lr_good", "m1_lr_bad"])
    results.lr_points = _records(
        {
            "session": lr["session"].tolist(),
            "participant": lr["participant"].tolist(),
            "arm": [labels.arm.get(a, "?") for a in lr["arm_id"].tolist()],
            "timepoint": [labels.timepoint.get(t, "?") for t in lr["timepoint_id"].tolist()],
            "lr_good": lr["m1_lr_good"].round(4).tolist(),
            "lr_bad": lr["m1_lr_bad"].round(4).tolist(),
        }
    )
    bias = frame.dropna(subset=["update_bias"])
    participants = sorted(set(bias["participant"].tolist()))
    results.trajectories_total = len(participants)
    if len(participants) > MAX_TRAJECTORIES:
        # Seeded by the study: the same sample on every load, so the chart does not jump.
        chosen = random.Random(study.pk).sample(participants, MAX_TRAJECTORIES)  # noqa: S311
        shown = bias[bias["participant"].isin(chosen)]
    else:
        shown = bias
    results.trajectories_shown = min(len(participants), MAX_TRAJECTORIES)
    timepoints = shown["timepoint_id"].tolist()
    results.trajectories = _records(
        {
            "participant": shown["participant"].tolist(),
            "arm": [labels.arm.get(a, "?") for a in shown["arm_id"].tolist()],
            "timepoint": [labels.timepoint.get(t, "?") for t in timepoints],
            "tp_order": [labels.order.get(t, 0) for t in timepoints],
            "update_bias": shown["update_bias"].round(3).tolist(),
        }
    )
    means = bias.groupby(["arm_id", "timepoint_id"], sort=False)["update_bias"].mean()
    keys: list[tuple[int, int]] = [(int(a), int(t)) for a, t in means.index]
    results.trajectory_means = sorted(
        (
            {
                "arm": labels.arm.get(arm, "?"),
                "tp_order": labels.order.get(tp, 0),
                "timepoint": labels.timepoint.get(tp, "?"),
                "update_bias": round(float(v), 3),
            }
            for (arm, tp), v in zip(keys, means.tolist(), strict=True)
        ),
        key=lambda r: (r["arm"], r["tp_order"]),
    )


# ---------------------------------------------------------------- sessions table

SESSION_COLUMNS = (
    "pk",
    "participant_id",
    "participant__arm__name",
    "timepoint__label",
    "status",
    "language",
    "created_at",
    "started_at",
    "last_activity_at",
    "completed_at",
    "participant__withdrawn_at",
    "current__status",
    "current__flags",
    "current__values__n_good",
    "current__values__n_bad",
    "current__values__update_bias",
)


def sessions_table(*, study: Study, filters: dict[str, Any]) -> QuerySet[Session, dict[str, Any]]:
    """The sessions page's rows: the study's sessions with their current-version score,
    filtered by the page's form (lazy). The API's filter is trials.api.filters.sessions_filtered.
    """
    qs = Session.objects.filter(participant__study=study).annotate(
        current=FilteredRelation("scores", condition=Q(scores__score_version=SCORE_VERSION))
    )
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("arm"):
        qs = qs.filter(participant__arm_id=filters["arm"])
    if filters.get("timepoint"):
        qs = qs.filter(timepoint_id=filters["timepoint"])
    flag = filters.get("flag")
    if flag == "any":
        qs = qs.filter(current__status=DONE, current__flags__icontains='"')
    elif flag == "none":
        qs = qs.filter(current__status=DONE, current__flags=[])
    elif flag == "unscored":
        qs = qs.filter(Q(current__isnull=True) | ~Q(current__status=DONE))
    elif flag:
        qs = qs.filter(current__flags__icontains=f'"{flag}"')
    if filters.get("date_from"):
        qs = qs.filter(created_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        qs = qs.filter(created_at__date__lte=filters["date_to"])
    who = (filters.get("participant") or "").strip()
    if who:
        by_identity = ParticipantIdentity.objects.filter(study=study, external_id=who).values(
            "participant_id"
        )
        match = Q(participant_id__in=by_identity)
        digits = who.lstrip("Pp")
        if digits.isdigit() and len(digits) < 19:
            match |= Q(participant_id=int(digits))
        qs = qs.filter(match)
    return qs.values(*SESSION_COLUMNS).order_by("-created_at", "-pk")


# ---------------------------------------------------------------- participant page


@dataclass
class ParticipantDetail:
    participant: Participant
    identity: ParticipantIdentity | None
    sessions: list[dict[str, Any]]
    withdrawal: Withdrawal | None


TRIAL_COLUMNS = (
    "event",
    "practice",
    "block1_position",
    "block2_position",
    "e1",
    "br",
    "e2",
    "ee",
    "valence",
    "update",
    "excluded",
    "exclusion_reason",
    "rt_e1_ms",
    "rt_e2_ms",
)


def participant_detail(*, study: Study, pk: int) -> ParticipantDetail | None:
    """A participant of the study with each session's trials and score (six queries)."""
    participant = (
        Participant.objects.select_related("arm", "identity").filter(study=study, pk=pk).first()
    )
    if participant is None:
        return None
    try:
        identity: ParticipantIdentity | None = participant.identity
    except ParticipantIdentity.DoesNotExist:
        identity = None
    sessions = list(
        Session.objects.filter(participant=participant)
        .select_related("timepoint", "event_list")
        .order_by("timepoint__order")
    )
    scores = {
        s.session_id: s
        for s in Score.objects.filter(session__participant=participant, score_version=SCORE_VERSION)
    }
    frame = trials_frame(session_ids=[s.pk for s in sessions])
    trials_by_session: dict[int, list[dict[str, Any]]] = {}
    if not frame.empty:
        from scoring.metrics import ensure_derived

        derived = ensure_derived(frame)
        derived = derived.sort_values(
            ["session", "practice", "block1_position"], ascending=[True, False, True]
        )
        for record in derived.to_dict(orient="records"):
            row = {k: json_scalar(record.get(k)) for k in TRIAL_COLUMNS}
            trials_by_session.setdefault(int(record["session"]), []).append(row)
    withdrawal = Withdrawal.objects.filter(participant_pk=participant.pk).first()
    return ParticipantDetail(
        participant=participant,
        identity=identity,
        sessions=[
            {
                "session": s,
                "score": scores.get(s.pk),
                "trials": trials_by_session.get(s.pk, []),
            }
            for s in sessions
        ],
        withdrawal=withdrawal,
    )
