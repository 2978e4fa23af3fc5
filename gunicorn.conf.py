"""gunicorn's settings (read from the working directory by every `gunicorn` command here).

The app and its URLconf are imported once, in the master, before the workers fork: otherwise
each worker imports the views (pandas, SciPy) on its first request, seconds on a busy 2-core
machine, and the forked workers share those pages instead of holding a copy each. Nothing
here opens a database connection: Django's pool is created in each worker on first use.
"""

preload_app = True


def when_ready(server: object) -> None:
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every view module
