"""Hand a Celery task to the broker, or, in the embedded mode, to a thread of this process.

Without a broker (`make run`) Celery runs tasks eagerly, that is inside the request that
queued them: a completion would wait for its session's scoring (3.6 s on the demo). A thread
started once the transaction commits lets the response go out first, still in-process and
with no broker. This is the embedded mode's only concession to a single process; with a
broker the task goes to the workers as usual.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.db import connections

log = logging.getLogger(__name__)


def _run(task: Any, args: tuple[Any, ...]) -> None:
    try:
        outcome = task.apply(args=args)
        if outcome.failed():
            log.error("task %s%r failed: %s", task.name, args, outcome.result)
    finally:
        # This thread's own database connections: nothing else would close them.
        connections.close_all()


def task_publish(task: Any, *args: Any) -> None:
    """task.delay(*args), or, in the embedded mode, the task run in a thread of its own."""
    if settings.CELERY_TASK_ALWAYS_EAGER and settings.EMBEDDED_TASKS_IN_THREAD:
        # Not a daemon: stopping the server waits for a running score instead of losing it.
        threading.Thread(target=_run, args=(task, args), name=f"task {task.name}").start()
        return
    task.delay(*args)
