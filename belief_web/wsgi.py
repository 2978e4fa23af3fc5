import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")
django_application = get_wsgi_application()

# The participant's usual answer is stored and answered before Django's request handling
# (trials.api.answer_lane); every other request, and every answer that is not usual, goes on.
from trials.api.answer_lane import AnswerLane  # noqa: E402 - needs the settings loaded

application = AnswerLane(django_application)
