"""Production settings plus the ceiling views; used only by bench/load (never deployed).

Levers switched by the environment, so that one run can measure each against the default:
- BENCH_LANE=0: no participant API lane (common.lane): every request takes the full
  middleware stack, as before the lane.
"""

import os

from belief_web.settings import *  # noqa: F403
from belief_web.settings import INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [*INSTALLED_APPS, "bench.load"]
ROOT_URLCONF = "bench.load.urls"

if os.environ.get("BENCH_LANE", "1") == "0":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.endswith(".ParticipantApiLaneMiddleware")]
