"""POST / DELETE /api/v1/participants/<participant-token>/contact: reminders opt in, opt out."""

from typing import Any

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from reminders.services import contact_set, contact_stop
from trials.api.participant import ERROR, ParticipantView, as_api_error
from trials.services.errors import ServiceError


class ContactIn(serializers.Serializer[Any]):
    # Checked by the service (one message for every bad address); any JSON value may arrive.
    email = serializers.JSONField()
    time_zone = serializers.JSONField(
        required=False, help_text="The browser's IANA zone, for the times in the messages."
    )


class ContactView(ParticipantView):
    @extend_schema(
        operation_id="contact_set",
        request=ContactIn,
        responses={
            204: OpenApiResponse(description="Stored: reminders will be sent"),
            400: ERROR,
            404: ERROR,
            409: ERROR,
        },
    )
    def post(self, request: Request, token: str) -> Response:
        data = ContactIn(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            contact_set(
                token=token,
                email=data.validated_data["email"],
                time_zone=data.validated_data.get("time_zone", ""),
            )
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        operation_id="contact_delete",
        responses={204: OpenApiResponse(description="No more reminders"), 404: ERROR},
    )
    def delete(self, request: Request, token: str) -> Response:
        try:
            contact_stop(token=token)
        except ServiceError as exc:
            raise as_api_error(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("participants/<str:token>/contact", ContactView.as_view(), name="api-contact"),
]
