import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")
django_application = get_wsgi_application()

# The participant's usual answer is stored and answered before Django's request handling
# (trials.api.answer_lane); every other request, and every answer that is not usual, goes on.
from common.requestlog import RequestGuard  # noqa: E402 - needs the settings loaded
from trials.api.answer_lane import AnswerLane  # noqa: E402

application = AnswerLane(django_application)

# What the production server runs (common.serve): the access log, with routes instead of
# URLs, and the hung-request limit around the application. `runserver` serves `application`
# and logs on its own.
served = RequestGuard(application, timeout=settings.WEB_TIMEOUT_S, log_requests=settings.ACCESS_LOG)
