"""A prototype of a leaner response path, measured beside the real one (bench settings only).

Not production code: it shows what trials/services/responses.py could gain, for the engineer
who owns it. Same contract as POST /api/v1/sessions/<token>/responses for the usual case
(fixed base rates, the expected next step, a new client_id) in two round trips instead of
five or six: one SELECT of the session with its participant and study, then ONE statement in
autocommit (no BEGIN / COMMIT round trips) that claims the step and inserts the row:
a data-modifying CTE is atomic, so a failed INSERT (a replayed client_id) undoes the claim.
Anything else (adaptive base rates, an out-of-order or replayed answer, a bad value) is
handed to the production view, which answers it exactly as it does today.
"""

import json
import uuid
from collections import OrderedDict
from typing import Any

from django.db import IntegrityError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from trials.api.participant import ResponseCreateView
from trials.steps import Step, session_steps

_production = ResponseCreateView.as_view()
_steps_cache: "OrderedDict[int, list[Step]]" = OrderedDict()  # a session's plan never changes
_CACHE_SIZE = 5000
RATINGS = {"confidence", "vividness", "familiarity", "experience", "arousal", "negativity"}

SESSION_SQL = """
SELECT s.id, s.plan, s.step_index, s.status, p.withdrawn_at IS NOT NULL,
       st.scale_min, st.scale_max, st.min_br_view_ms, st.br_mode,
       st.collect_ebr, st.collect_confidence, st.memory_test, st.ratings
FROM trials_session s
JOIN trials_participant p ON p.id = s.participant_id
JOIN trials_study st ON st.id = p.study_id
WHERE s.token = %s
"""

CLAIM_AND_INSERT_SQL = """
WITH claimed AS (
    UPDATE trials_session
    SET step_index = step_index + 1, status = 'in_progress',
        started_at = COALESCE(started_at, %(now)s), last_activity_at = %(now)s
    WHERE id = %(sid)s AND step_index = %(idx)s AND status IN ('created', 'in_progress')
      AND (%(phase)s <> 'br' OR EXISTS (
          SELECT 1 FROM trials_trial t
          WHERE t.session_id = %(sid)s AND t.event_id = %(eid)s AND t.br = %(value)s))
    RETURNING id
)
INSERT INTO trials_response
    (session_id, event_id, phase, value, rt_ms, onset_at, received_at, client_id)
SELECT id, %(eid)s, %(phase)s, %(value)s, %(rt)s, %(onset)s, %(now)s, %(cid)s FROM claimed
RETURNING id, (SELECT br FROM trials_trial t WHERE t.session_id = %(sid)s AND t.event_id = %(eid)s)
"""


def _steps(sid: int, plan: Any, config: dict[str, bool]) -> list[Step]:
    steps = _steps_cache.get(sid)
    if steps is None:
        steps = session_steps(json.loads(plan) if isinstance(plan, str) else plan, config)
        _steps_cache[sid] = steps
        if len(_steps_cache) > _CACHE_SIZE:
            _steps_cache.popitem(last=False)
    return steps


def _parse(body: bytes) -> dict[str, Any] | None:
    """The body when it is plainly valid, else None (the production view explains why)."""
    try:
        d = json.loads(body)
        out = {
            "cid": uuid.UUID(str(d["client_id"])),
            "event": d["event"],
            "phase": d["phase"],
            "value": d["value"],
            "rt": d["rt_ms"],
            "onset": parse_datetime(d["onset_at"]) if d.get("onset_at") else None,
        }
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(out["event"], str) and isinstance(out["phase"], str)):
        return None
    if type(out["value"]) is not int or type(out["rt"]) is not int:
        return None
    if not 0 <= out["rt"] <= 86_400_000 or (d.get("onset_at") and out["onset"] is None):
        return None
    return out


@csrf_exempt
def lean_response(request: HttpRequest, token: str) -> HttpResponse:
    if request.method != "POST" or len(request.body) > 4096 or len(token) > 64:
        return _production(request, token=token)
    data = _parse(request.body)
    if data is None:
        return _production(request, token=token)
    with connection.cursor() as cursor:
        cursor.execute(SESSION_SQL, [token])
        row = cursor.fetchone()
        if row is None:
            return _production(request, token=token)
        (sid, plan, index, status, withdrawn, low, high, min_br_ms, br_mode, *flags) = row
        config = dict(
            zip(("collect_ebr", "collect_confidence", "memory_test", "ratings"), flags, strict=True)
        )
        steps = _steps(sid, plan, config)
        expected = steps[index] if index < len(steps) else None
        phase, value = data["phase"], data["value"]
        if phase in RATINGS:
            low, high = 1, 6
        if (
            expected is None
            or (expected.code, expected.phase) != (data["event"], phase)
            or withdrawn
            or status not in ("created", "in_progress")
            or br_mode != "fixed"
            or not (0 <= value <= 100 if phase == "br" else low <= value <= high)
            or (phase == "br" and data["rt"] < min_br_ms)
        ):
            return _production(request, token=token)
        now = timezone.now()
        try:
            cursor.execute(
                CLAIM_AND_INSERT_SQL,
                {**data, "sid": sid, "idx": index, "eid": expected.event_id, "now": now},
            )
            inserted = cursor.fetchone()
        except IntegrityError:
            inserted = None
    if inserted is None:  # raced, replayed or a wrong base rate: the full path decides
        return _production(request, token=token)
    pk, br = inserted
    body: dict[str, Any] = {
        "id": pk,
        "client_id": str(data["cid"]),
        "event": expected.code,
        "phase": phase,
        "value": value,
        "rt_ms": data["rt"],
        "onset_at": data["onset"].isoformat() if data["onset"] else None,
        "received_at": now.isoformat(),
        "progress": {"done": index + 1, "total": len(steps)},
    }
    if phase == "e1":
        body["br"] = br
    return JsonResponse(body, status=201)
