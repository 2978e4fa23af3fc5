"""The settings every researcher endpoint shares: who may see which study."""

from typing import Any

from django.db.models import QuerySet
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from belief_web.errors import ApiError
from trials.models import Study, StudyMembership


def studies_visible(user: Any) -> QuerySet[Study]:
    """Studies the user is a member of (staff see every study)."""
    if user.is_staff:
        return Study.objects.all()
    return Study.objects.filter(memberships__user=user)


class ResearcherView(APIView):
    """Base of researcher endpoints: logged-in members only; other studies answer 404."""

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]
    #: the lowest role allowed: viewer < analyst < owner
    min_role = StudyMembership.Role.VIEWER

    def study_for(self, request: Request, slug: str) -> Study:
        study = studies_visible(request.user).filter(slug=slug).first()
        if study is None:
            raise ApiError(status_code=404, code="not_found", message="No such study.")
        return study
