"""Production settings plus the ceiling view; used only by bench/load (never deployed)."""

from belief_web.settings import *  # noqa: F403
from belief_web.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.load"]
ROOT_URLCONF = "bench.load.urls"
