"""gunicorn settings of the fault tests: the app and its URLconf are imported once, in the
master, before the workers fork. Otherwise every worker imports the views (pandas, SciPy) on
its first request: seconds on a busy 2-core machine, and the restart figures would measure
that instead of the queue."""

preload_app = True


def when_ready(server: object) -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module
