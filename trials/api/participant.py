"""Participant API: authorised by the unguessable session token alone."""

import json
import uuid
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from common.errors import ApiError, error_body
from common.parsers import BoundedJSONParser
from instruments.session import item_payload_summary, item_record
from protocol import answers, phases
from trials.browser import browser_key
from trials.models import PHASE_CHOICES, Participant, Study
from trials.selectors import (
    next_visit_payload,
    participant_visits,
    session_state,
    visit_payload,
)
from trials.services.enrolment import participant_for_token, study_enrol
from trials.services.errors import NotFound, ServiceError
from trials.services.responses import (
    payload_summary,
    response_record,
    session_complete,
    session_for_token,
)
from trials.visits import VisitStatus

ERROR = inline_serializer(
    "Error",
    {
        "error": inline_serializer(
            "ErrorBody",
            {
                "code": serializers.CharField(),
                "message": serializers.CharField(),
                "fields": serializers.DictField(),
            },
        )
    },
)


def as_api_error(exc: ServiceError) -> ApiError:
    return ApiError(
        status_code=exc.status,
        code=exc.code,
        message=exc.message,
        fields=exc.fields,
        extra=exc.extra,
    )


class ParticipantView(APIView):
    """Shared settings of the participant endpoints: no login, small bodies only."""

    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    parser_classes = [BoundedJSONParser]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.PARTICIPANT_BODY_LIMIT:
            raise ApiError(
                status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                code="too_large",
                message=f"The body is over {settings.PARTICIPANT_BODY_LIMIT} bytes.",
            )
        super().initial(request, *args, **kwargs)


class UUIDString(serializers.UUIDField):
    """A UUID written as a string: DRF's own field also takes an integer (UUID(int=12))."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ResponseIn(serializers.Serializer[Any]):
    """A task answer `{client_id, event, phase, value, rt_ms, onset_at}`, or a
    questionnaire answer `{client_id, phase: "item", instrument, item, value, rt_ms,
    onset_at}` whose value is null for an optional item skipped."""

    client_id = UUIDString()
    event = serializers.CharField(
        max_length=answers.EVENT_CODE_MAX, help_text="Not sent for an item."
    )
    phase = serializers.ChoiceField(choices=[*PHASE_CHOICES, (phases.ITEM.name, phases.ITEM.name)])
    instrument = serializers.CharField(max_length=32, required=False, help_text="An item's.")
    item = serializers.CharField(max_length=32, required=False, help_text="An item's code.")
    value = serializers.IntegerField(
        min_value=answers.VALUE_MIN,
        max_value=answers.VALUE_MAX,
        help_text="null: an optional item skipped.",
    )
    rt_ms = serializers.IntegerField(min_value=0, max_value=answers.RT_MS_MAX)
    onset_at = serializers.DateTimeField(required=False, allow_null=True)

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        """An item's body names its instrument and item instead of an event, and its value
        may be null; a task answer's fields are checked exactly as they always were."""
        fields = super().get_fields()
        data = getattr(self, "initial_data", None)
        if isinstance(data, dict) and data.get("phase") == phases.ITEM.name:
            fields["event"] = serializers.CharField(
                max_length=answers.EVENT_CODE_MAX, required=False, allow_null=True
            )
            fields["instrument"] = serializers.CharField(max_length=32)
            fields["item"] = serializers.CharField(max_length=32)
            fields["value"] = serializers.IntegerField(
                min_value=answers.VALUE_MIN, max_value=answers.VALUE_MAX, allow_null=True
            )
        else:
            del fields["instrument"], fields["item"]
        return fields


class ResponseOut(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    client_id = serializers.UUIDField()
    event = serializers.CharField(allow_null=True)
    phase = serializers.CharField()
    value = serializers.IntegerField(allow_null=True)
    rt_ms = serializers.IntegerField()
    onset_at = serializers.DateTimeField(allow_null=True)
    received_at = serializers.DateTimeField()
    br = serializers.IntegerField(required=False, help_text="Only in the answer to an e1.")
    instrument = serializers.CharField(required=False, help_text="Only for an item.")
    item = serializers.CharField(required=False, help_text="Only for an item.")
    progress = serializers.DictField()


class SessionStateView(ParticipantView):
    @extend_schema(
        operation_id="session_state",
        responses={
            200: OpenApiResponse(description="Session state and the steps still to do"),
            404: ERROR,
        },
    )
    def get(self, request: Request, token: str) -> Response:
        try:
            session = session_for_token(token)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return Response(
            session_state(session=session, return_url=return_url(request, session.participant))
        )


_PHASES = frozenset(phases.NAMES)


def _plain_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _refuse_constant(name: str) -> None:
    raise ValueError(name)  # NaN, Infinity: DRF's strict JSON parser refuses them too


def usual_answer(request: HttpRequest) -> dict[str, Any] | None:
    """The body of an answer when it is plainly valid, read without DRF; else None.

    The usual answer (a small JSON object whose fields have exactly the expected types) is
    validated here at a fraction of the cost of DRF's request wrapping and serializer
    (DESIGN.md: a serializer on the hot path costs a large share of the request). Anything
    else, including every invalid body, returns None: the DRF path then parses and explains
    it exactly as before, so both paths accept the same answers with the same values.
    """
    length = request.META.get("CONTENT_LENGTH") or ""
    if not length.isdigit() or int(length) > settings.PARTICIPANT_BODY_LIMIT:
        return None
    charset = (request.encoding or "utf-8").lower()
    if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
        return None
    return plain_answer(request.body)


def plain_answer(body: bytes) -> dict[str, Any] | None:
    """A UTF-8 JSON answer body whose fields have exactly the expected types, read; else None
    (usual_answer's rules, also used by the answer's WSGI lane, trials.api.answer_lane)."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
        if not isinstance(data, dict):
            return None
        client_id, event, phase = data["client_id"], data["event"], data["phase"]
        value, rt_ms, onset_at = data["value"], data["rt_ms"], data.get("onset_at")
        if not (
            isinstance(client_id, str)
            and isinstance(event, str)
            and 0 < len(event) <= answers.EVENT_CODE_MAX
            and event.isascii()
            and event.isprintable()
            and event == event.strip()
            and isinstance(phase, str)
            and phase in _PHASES
            and _plain_int(value, answers.VALUE_MIN, answers.VALUE_MAX)
            and _plain_int(rt_ms, 0, answers.RT_MS_MAX)
            and (onset_at is None or isinstance(onset_at, str))
        ):
            return None
        answer = {
            "client_id": uuid.UUID(client_id),
            "event": event,
            "phase": phase,
            "value": value,
            "rt_ms": rt_ms,
            # DRF's own field, so that a time is read and normalised exactly as on that path.
            "onset_at": None
            if onset_at is None
            else serializers.DateTimeField().to_internal_value(onset_at),
        }
    except (ValueError, KeyError, RecursionError, serializers.ValidationError):
        return None
    return answer


class ResponseCreateView(ParticipantView):
    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # The usual answer, stored, replayed or refused, is answered here without DRF's
        # request and response machinery, in the same JSON and error shape; a body that is
        # not plainly valid takes DRF's path, which validates and explains it.
        answer = usual_answer(request) if request.method == "POST" else None
        if answer is None:
            return super().dispatch(request, *args, **kwargs)
        try:
            recorded = response_record(token=kwargs["token"], **answer)
        except ServiceError as exc:
            body = error_body(exc.code, exc.message, exc.fields, **exc.extra)
            return self._json(body, exc.status)
        return self._json(
            payload_summary(recorded),
            status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
        )

    def _json(self, body: dict[str, Any], status_code: int) -> HttpResponse:
        """`body` rendered as DRF renders it, with DRF's headers (`Allow`)."""
        response = HttpResponse(
            JSONRenderer().render(body), status=status_code, content_type="application/json"
        )
        for header, value in self.default_response_headers.items():
            response[header] = value
        return response

    @extend_schema(
        operation_id="response_create",
        request=ResponseIn,
        responses={
            200: ResponseOut,
            201: ResponseOut,
            400: ERROR,
            404: ERROR,
            409: ERROR,
            413: ERROR,
        },
    )
    def post(self, request: Request, token: str) -> Response:
        data = ResponseIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["phase"] == phases.ITEM.name:
            try:
                answered = item_record(
                    token=token,
                    client_id=v["client_id"],
                    instrument=v["instrument"],
                    item=v["item"],
                    value=v["value"],
                    rt_ms=v["rt_ms"],
                    onset_at=v.get("onset_at"),
                )
            except ServiceError as exc:
                raise as_api_error(exc) from None
            return Response(
                item_payload_summary(answered),
                status=status.HTTP_201_CREATED if answered.created else status.HTTP_200_OK,
            )
        try:
            recorded = response_record(
                token=token,
                client_id=v["client_id"],
                event=v["event"],
                phase=v["phase"],
                value=v["value"],
                rt_ms=v["rt_ms"],
                onset_at=v.get("onset_at"),  # optional: a missing key is None, not a 500
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return Response(
            payload_summary(recorded),
            status=status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK,
        )


class SessionCompleteView(ParticipantView):
    @extend_schema(
        operation_id="session_complete",
        request=None,
        responses={
            200: inline_serializer(
                "Completion",
                {
                    "completion_code": serializers.CharField(),
                    "redirect_url": serializers.CharField(),
                    "next_visit": inline_serializer(
                        "NextVisit",
                        {
                            "timepoint": serializers.CharField(),
                            "url": serializers.CharField(),
                            "opens_at": serializers.DateTimeField(allow_null=True),
                            "closes_at": serializers.DateTimeField(allow_null=True),
                        },
                        allow_null=True,
                    ),
                },
            ),
            404: ERROR,
            409: ERROR,
        },
    )
    def post(self, request: Request, token: str) -> Response:
        try:
            completion = session_complete(token=token)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        following = participant_visits(participant=completion.participant).next
        return Response(
            {
                "completion_code": completion.completion_code,
                "redirect_url": completion.redirect_url,
                "next_visit": next_visit_payload(
                    following, url=return_url(request, completion.participant)
                ),
            }
        )


class ParticipantVisitsView(ParticipantView):
    @extend_schema(
        operation_id="participant_visits",
        responses={
            200: inline_serializer(
                "ParticipantVisits",
                {
                    "study": serializers.CharField(),
                    "language": serializers.CharField(),
                    "visits": inline_serializer(
                        "VisitOut",
                        {
                            "timepoint": serializers.CharField(),
                            "label": serializers.CharField(),
                            "status": serializers.ChoiceField(
                                choices=[str(s) for s in VisitStatus]
                            ),
                            "opens_at": serializers.DateTimeField(allow_null=True),
                            "closes_at": serializers.DateTimeField(allow_null=True),
                            "completed_at": serializers.DateTimeField(allow_null=True),
                        },
                        many=True,
                    ),
                },
            ),
            404: ERROR,
        },
    )
    def get(self, request: Request, token: str) -> Response:
        try:
            participant = participant_for_token(token)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        if participant.withdrawn_at is not None:
            # A withdrawn participant's link is revoked: answered as any unknown token.
            raise as_api_error(NotFound("Unknown link."))
        row = participant_visits(participant=participant)
        return Response(
            {
                "study": participant.study.slug,
                "language": participant.language,
                "visits": [visit_payload(v) for v in row.visits],
            }
        )


def return_url(request: HttpRequest | Request, participant: Participant) -> str:
    """The participant's absolute return link, /r/<participant-token>/."""
    return request.build_absolute_uri(reverse("return", args=[participant.token]))


class EnrolIn(serializers.Serializer[Any]):
    external_id = serializers.CharField(max_length=200, required=False, allow_blank=True)
    params = serializers.DictField(child=serializers.CharField(max_length=200), required=False)
    arm = serializers.SlugField(max_length=32, required=False)
    language = serializers.CharField(max_length=8, required=False)
    consent = serializers.BooleanField()

    def validate_consent(self, value: bool) -> bool:
        if not value:
            raise serializers.ValidationError("Consent is required to take part.")
        return value

    def validate_params(self, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20:
            raise serializers.ValidationError("At most 20 parameters.")
        # Keys are not checked by the child field; PostgreSQL's jsonb refuses NUL.
        if any(len(key) > 40 or "\x00" in key for key in value):
            raise serializers.ValidationError("Parameter names: at most 40 characters, no NUL.")
        return value


class EnrolThrottle(SimpleRateThrottle):
    """Enrolments per client address: the API and the consent form share one budget.

    Junk enrolments would skew the least-filled arm and the Latin-square rows, so every
    address, logged in or not, counts (the consent form calls `enrol_throttle_wait`).
    """

    scope = "enrol"
    rate = "120/min"

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def allow_request(self, request: Any, view: Any) -> bool:
        # A cache outage must not stop enrolment: the throttle fails open.
        try:
            return super().allow_request(request, view)
        except Exception:  # noqa: BLE001 - any cache backend error
            return True


def enrol_throttle_wait(request: HttpRequest) -> int:
    """0 if this address may enrol now (the attempt is counted), else seconds to wait."""
    throttle = EnrolThrottle()
    if throttle.allow_request(request, None):
        return 0
    return max(1, int(throttle.wait() or 60))


class EnrolView(ParticipantView):
    throttle_classes = [EnrolThrottle]

    @extend_schema(
        operation_id="study_enrol",
        request=EnrolIn,
        responses={
            201: inline_serializer(
                "Enrolment",
                {
                    "session_token": serializers.CharField(),
                    "participant_token": serializers.CharField(),
                    "task_url": serializers.CharField(),
                },
            ),
            400: ERROR,
            404: ERROR,
            409: ERROR,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        study = get_object_or_404(Study, slug=slug)
        data = EnrolIn(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            enrolment = study_enrol(
                study=study,
                external_id=v.get("external_id"),
                source="api",
                params=v.get("params") or {},
                arm_code=v.get("arm"),
                language=v.get("language"),
                browser_key=browser_key(request.COOKIES),
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        # 201 whether the id was new, resumed with proof, or enrolled again as a duplicate:
        # the answer says nothing about whether an id is known (issue 14.2).
        return Response(
            {
                "session_token": enrolment.session.token,
                "participant_token": enrolment.participant.token,
                "task_url": request.build_absolute_uri(f"/t/{enrolment.session.token}/"),
            },
            status=status.HTTP_201_CREATED,
        )
