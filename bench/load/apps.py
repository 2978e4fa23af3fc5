"""The bench app: the ceiling's table, and the levers that put code back as it was before.

BENCH_THROTTLE_READ=old (a lever of bench/load/run.py): the participant throttle reads its
window as it did before the cache's own reading connection, an MGET of both keys through
redis-py's pool and command path, so that one run can measure what the change bought.
"""

import os
import time

from django.apps import AppConfig


class BenchLoadConfig(AppConfig):
    name = "bench.load"
    label = "load"

    def ready(self) -> None:
        if os.environ.get("BENCH_THROTTLE_READ") == "old":
            from django.core.cache import cache

            from common import throttle

            def blocked_for(self: throttle.Window, ident: str) -> int:
                count_key, start_key = self._keys(ident)
                values = cache.get_many([count_key, start_key])
                if int(values.get(count_key, 0)) < self.limit:
                    return 0
                started = float(values.get(start_key, time.time()))
                return max(1, int(started + self.seconds - time.time()) + 1)

            throttle.Window.blocked_for = blocked_for  # type: ignore[method-assign]
