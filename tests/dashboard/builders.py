"""Data for the dashboard tests and bench: real sessions through the services, or many fast.

`complete_session` answers a session step by step through the same services the
participant API uses, then completes it (scored in-process). `bulk_study` writes
thousands of sessions and plausible scores with bulk_create, in a few seconds.
"""

import uuid
from datetime import timedelta
from typing import Any

import numpy as np
from django.contrib.auth.models import User
from django.utils import timezone

from instruments.models import ItemAnswer
from scoring.metrics import SCORE_COLUMNS, SCORE_VERSION
from scoring.models import Score
from scoring.services import sessions_score
from tests.factories import make_study
from trials.models import (
    Arm,
    Event,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    StudyEventList,
    StudyMembership,
    Timepoint,
)
from trials.services.enrolment import session_create, study_enrol
from trials.services.responses import response_record, session_complete, steps_of


def member(study: Study, role: str, username: str | None = None) -> User:
    """A researcher with a role in the study (password 'pw')."""
    user = User.objects.create_user(username or f"{role}-{study.slug}", password="pw")
    StudyMembership.objects.create(study=study, user=user, role=role)
    return user


def complete_session(session: Session, *, e1: dict[str, int], e2: dict[str, int]) -> Session:
    """Answer every step of a session with the given E1/E2 per event code, then complete it.

    Other phases get a valid default; the base-rate screen shows the trial's base rate.
    """
    brs: dict[str, int] = {}
    study = session.participant.study
    for step in steps_of(session)[session.step_index :]:
        if step.is_item:
            _item_answer(session, step)
            continue
        if step.phase == "e1":
            value = e1.get(step.code, 40)
        elif step.phase == "e2":
            value = e2.get(step.code, 40)
        elif step.phase == "br":
            value = brs[step.code]
        elif step.phase in ("ebr1", "ebr2", "memory"):
            value = 40
        else:
            value = 3
        recorded = response_record(
            token=session.token,
            client_id=uuid.uuid4(),
            event=step.code,
            phase=step.phase,
            value=value,
            rt_ms=max(study.min_br_view_ms, 1500),
            onset_at=None,
        )
        if step.phase == "e1" and recorded.br is not None:
            brs[step.code] = recorded.br
    session_complete(token=session.token)
    # Tests run inside a transaction: on_commit hooks (the scoring task) never fire there.
    sessions_score(session_ids=[session.pk])
    session.refresh_from_db()
    return session


def _item_answer(session: Session, step: Any) -> None:
    """A questionnaire item of the session answered through the participant's service: its
    lowest option (or its minimum)."""
    from instruments.models import Instrument
    from instruments.session import item_record

    question = Instrument.objects.get(pk=step.instrument_id).parsed().item(step.item)
    assert question is not None
    item_record(
        token=session.token,
        client_id=uuid.uuid4(),
        instrument=step.instrument,
        item=step.item,
        value=question.minimum if question.numeric else question.values()[0],
        rt_ms=1500,
        onset_at=None,
    )


def enrol_and_complete(
    study: Study,
    *,
    external_id: str,
    arm: str | None = None,
    good_shift: int = 6,
    bad_shift: int = 3,
) -> Session:
    """Enrol a participant and complete their first session with a clear optimism bias.

    Every event's E1 is its base rate + 15 (good news) or - 10 (bad news), alternately;
    E2 moves `good_shift` toward the base rate after good news, `bad_shift` after bad.
    """
    enrolment = study_enrol(study=study, external_id=external_id, source="prolific", arm_code=arm)
    session = enrolment.session
    return complete_planned(session, good_shift=good_shift, bad_shift=bad_shift)


def complete_planned(session: Session, *, good_shift: int = 6, bad_shift: int = 3) -> Session:
    base_rates = dict(
        Event.objects.filter(event_list=session.event_list).values_list("code", "base_rate")
    )
    e1: dict[str, int] = {}
    e2: dict[str, int] = {}
    for i, (code, br) in enumerate(sorted(base_rates.items())):
        if i % 2 == 0:
            e1[code] = br + 15
            e2[code] = e1[code] - good_shift
        else:
            e1[code] = br - 10
            e2[code] = e1[code] + bad_shift
    return complete_session(session, e1=e1, e2=e2)


def next_session(session: Session) -> Session:
    """The participant's next timepoint's session (created now, window ignored)."""
    following = (
        Timepoint.objects.filter(study=session.participant.study, order__gt=session.timepoint.order)
        .order_by("order")
        .first()
    )
    assert following is not None
    return session_create(participant=session.participant, timepoint=following)


# ---------------------------------------------------------------- demo-like, with trials


def simulate_sessions(
    study: Study, *, n_participants: int = 24, seed: int = 1, n_timepoints: int | None = None
) -> list[int]:
    """Participants who did every timepoint, answers simulated from the RL model, scored.

    Sessions and trials come from the enrolment service (real plans and base rates);
    the answers are bulk-written: E1 is the base rate +- 5..25, E2 = E1 + LR_v (BR - E1)
    + noise. Controls learn more from good news; patients learn as little from good as
    from bad news at baseline and more at later timepoints (the ketamine paper's shape).
    Returns the session ids, scored by the real scoring service.
    """
    rng = np.random.default_rng(seed)
    arms = list(Arm.objects.filter(study=study).order_by("id"))
    timepoints = list(Timepoint.objects.filter(study=study).order_by("order"))[:n_timepoints]
    n_lists = StudyEventList.objects.filter(study=study).count()
    low, high = study.scale_min, study.scale_max
    now = timezone.now()
    session_ids = []
    responses = []
    items: list[ItemAnswer] = []
    definitions: dict[int, Any] = {}
    for i in range(n_participants):
        arm = arms[i % len(arms)]
        participant = Participant.objects.create(
            study=study,
            arm=arm,
            sequence=i % n_lists,
            consented_at=now - timedelta(days=10),
        )
        ParticipantIdentity.objects.create(
            participant=participant, study=study, source="prolific", external_id=f"SIM{seed}-{i}"
        )
        patient = arm.code.startswith("pat")
        for t_index, timepoint in enumerate(timepoints):
            session = session_create(participant=participant, timepoint=timepoint)
            lr_good = (0.4 + 0.2 * min(t_index, 1)) if patient else 0.62
            lr_good = float(np.clip(rng.normal(lr_good, 0.08), 0.05, 0.95))
            lr_bad = float(np.clip(rng.normal(0.42, 0.08), 0.05, 0.95))
            finished = now - timedelta(days=8 - 3 * t_index, minutes=int(rng.integers(0, 600)))
            trials = {t.event_id: t for t in session.trials.all()}
            steps = steps_of(session)
            e1s: dict[int, int] = {}
            for k, step in enumerate(steps):
                answered = finished - timedelta(seconds=5 * (len(steps) - k))
                if step.is_item:
                    items.append(_simulated_item(session, step, rng, answered, definitions))
                    continue
                br = trials[step.event_id].br
                assert br is not None
                if step.phase == "e1":
                    sign = 1 if rng.random() < 0.5 else -1
                    value = int(np.clip(br + sign * rng.integers(5, 26), low, high))
                    e1s[step.event_id] = value
                elif step.phase == "br":
                    value = br
                elif step.phase == "e2":
                    e1 = e1s[step.event_id]
                    lr = lr_good if br < e1 else lr_bad
                    value = int(np.clip(round(e1 + lr * (br - e1) + rng.normal(0, 3)), low, high))
                elif step.phase in ("ebr1", "ebr2", "memory"):
                    value = int(np.clip(br + rng.integers(-8, 9), low, high))
                else:
                    value = int(rng.integers(1, 7))
                responses.append(
                    Response(
                        session=session,
                        event_id=step.event_id,
                        phase=step.phase,
                        value=value,
                        rt_ms=int(rng.integers(2000, 7000))
                        if step.phase != "br"
                        else max(study.min_br_view_ms, 2100),
                        received_at=answered,
                        client_id=uuid.uuid4(),
                    )
                )
            Session.objects.filter(pk=session.pk).update(
                status=Session.Status.COMPLETED,
                step_index=len(steps),
                started_at=finished - timedelta(minutes=14),
                last_activity_at=finished,
                completed_at=finished,
                completion_code=f"SIM{session.pk}",
            )
            session_ids.append(session.pk)
    Response.objects.bulk_create(responses, batch_size=5000)
    ItemAnswer.objects.bulk_create(items, batch_size=5000)
    sessions_score(session_ids=session_ids)
    return session_ids


def _simulated_item(
    session: Session,
    step: Any,
    rng: np.random.Generator,
    answered: Any,
    definitions: dict[int, Any],
) -> ItemAnswer:
    """A plausible answer to a questionnaire step: any option, or a number in its range."""
    from instruments.models import Instrument

    if step.instrument_id not in definitions:
        definitions[step.instrument_id] = Instrument.objects.get(pk=step.instrument_id).parsed()
    question = definitions[step.instrument_id].item(step.item)
    assert question is not None
    if question.numeric:
        low, high = question.minimum or 0, question.maximum or 0
        value = int(rng.integers(low, min(high, low + 40) + 1))
    else:
        value = int(rng.choice(question.values()))
    return ItemAnswer(
        session=session,
        participant_id=session.participant_id,
        instrument_id=step.instrument_id,
        item=step.item,
        value=value,
        source=ItemAnswer.Source.PARTICIPANT,
        rt_ms=int(rng.integers(1000, 5000)),
        answered_at=answered,
        client_id=uuid.uuid4(),
    )


# ---------------------------------------------------------------- many sessions, fast

FLAG_CHOICES = ("too_few_good", "too_few_bad", "constant_e1", "fast_rt", "many_away")


def _plausible_scores(rng: np.random.Generator, arm_index: int, tp_index: int) -> dict[str, Any]:
    """Score values of one session with the shape of real ones (PROTOCOL.md)."""
    # Controls (arm 1) update more after good news; patients gain at later timepoints.
    good = rng.normal(11 + 3 * arm_index + 2 * tp_index * (1 - arm_index), 4)
    bad = rng.normal(9, 4)
    lr_good = float(np.clip(rng.normal(0.5 + 0.08 * arm_index, 0.15), 0, 1))
    lr_bad = float(np.clip(rng.normal(0.42, 0.15), 0, 1))
    n_good, n_bad = int(rng.integers(8, 21)), int(rng.integers(8, 21))
    values: dict[str, Any] = {name: float(rng.normal(0, 1)) for name in SCORE_COLUMNS}
    values.pop("flags")
    values.update(
        {
            "n_good": n_good,
            "n_bad": n_bad,
            "n_excluded": int(rng.integers(0, 4)),
            "update_good": round(float(good), 3),
            "update_bad": round(float(bad), 3),
            "update_bias": round(float(good - bad), 3),
            "ee_good": float(rng.uniform(10, 25)),
            "ee_bad": float(rng.uniform(10, 25)),
            "mean_e1": float(rng.uniform(25, 50)),
            "alpha_good": float(np.clip(rng.normal(0.55, 0.2), -0.5, 1.5)),
            "alpha_bad": float(np.clip(rng.normal(0.45, 0.2), -0.5, 1.5)),
            "memory_error": None,
            "ebr_update_bias": None,
            "rt_e1_mean_ms": float(rng.uniform(1500, 6000)),
            "rt_e2_mean_ms": float(rng.uniform(1200, 5000)),
            "m0_lr": (lr_good + lr_bad) / 2,
            "m1_lr_good": lr_good,
            "m1_lr_bad": lr_bad,
            "m1_scaling": (lr_good + lr_bad) / 2,
            "m1_asymmetry": lr_good - lr_bad,
            "best_model": str(rng.choice(["M0", "M1", "M2"], p=[0.45, 0.4, 0.15])),
        }
    )
    return values


def bulk_study(
    *,
    n_sessions: int = 5000,
    n_timepoints: int = 2,
    arms: tuple[str, ...] = ("patients", "controls"),
    slug: str = "big",
    seed: int = 7,
) -> Study:
    """A study with n_sessions sessions (every participant at every timepoint), most of
    them completed and scored with plausible values, about one in eight flagged."""
    rng = np.random.default_rng(seed)
    study = make_study(n_events=4, n_practice=0, arms=arms, n_timepoints=n_timepoints, slug=slug)
    arm_rows = list(Arm.objects.filter(study=study).order_by("id"))
    timepoints = list(Timepoint.objects.filter(study=study).order_by("order"))
    lists = list(StudyEventList.objects.filter(study=study).order_by("position"))
    events = {
        link.event_list_id: [
            [e.pk, e.code] for e in Event.objects.filter(event_list_id=link.event_list_id)
        ]
        for link in lists
    }
    now = timezone.now()
    n_participants = n_sessions // n_timepoints
    participants = Participant.objects.bulk_create(
        [
            Participant(
                study=study,
                arm=arm_rows[i % len(arm_rows)],
                sequence=i % len(lists),
                language="en" if i % 3 else "fr",
                consented_at=now - timedelta(days=20),
            )
            for i in range(n_participants)
        ],
        batch_size=2000,
    )
    ParticipantIdentity.objects.bulk_create(
        [
            ParticipantIdentity(
                participant=p, study=study, source="prolific", external_id=f"PID{i:06d}"
            )
            for i, p in enumerate(participants)
        ],
        batch_size=2000,
    )
    sessions = []
    for i, participant in enumerate(participants):
        for t_index, timepoint in enumerate(timepoints):
            link = lists[(participant.sequence + t_index) % len(lists)]
            roll = rng.random()
            status = (
                Session.Status.COMPLETED
                if roll < 0.86
                else Session.Status.IN_PROGRESS
                if roll < 0.91
                else Session.Status.ABANDONED
                if roll < 0.96
                else Session.Status.CREATED
            )
            completed = now - timedelta(hours=float(rng.uniform(1, 24 * 14)))
            plan = {
                "practice": [],
                "order1": events[link.event_list_id],
                "order2": events[link.event_list_id],
            }
            sessions.append(
                Session(
                    participant=participant,
                    timepoint=timepoint,
                    event_list_id=link.event_list_id,
                    status=status,
                    language=participant.language,
                    plan=plan,
                    step_index=len(plan["order1"]) * 3
                    if status == Session.Status.COMPLETED
                    else int(rng.integers(0, 8)),
                    started_at=None
                    if status == Session.Status.CREATED
                    else completed - timedelta(minutes=15),
                    last_activity_at=None if status == Session.Status.CREATED else completed,
                    completed_at=completed if status == Session.Status.COMPLETED else None,
                    completion_code=f"C{i:05d}{t_index}"
                    if status == Session.Status.COMPLETED
                    else "",
                )
            )
    Session.objects.bulk_create(sessions, batch_size=2000)
    arm_index = {a.pk: k for k, a in enumerate(arm_rows)}
    tp_index = {t.pk: k for k, t in enumerate(timepoints)}
    scores = []
    for session in sessions:
        if session.status != Session.Status.COMPLETED:
            continue
        flags = [str(rng.choice(FLAG_CHOICES))] if rng.random() < 0.12 else []
        scores.append(
            Score(
                session=session,
                score_version=SCORE_VERSION,
                status=Score.Status.DONE,
                values=_plausible_scores(
                    rng, arm_index[session.participant.arm_id], tp_index[session.timepoint_id]
                ),
                flags=flags,
                scored_at=session.completed_at,
            )
        )
    Score.objects.bulk_create(scores, batch_size=2000)
    return study
