"""`make test`: find PostgreSQL, Redis and Chromium, say loudly what is missing, run pytest.

Settings are read before any conftest runs, so the database choice is made here.
"""

import os
import secrets
import shutil
import sys

PG_DEFAULT = "postgres://postgres@127.0.0.1:5432/belief_web"
REDIS_DEFAULT = "redis://127.0.0.1:6379/0"


def _postgres_ok(url: str) -> bool:
    try:
        import psycopg

        admin = url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin.replace("postgres://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception:  # noqa: BLE001 - any failure means not available
        return False


def _redis_ok(url: str) -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


def main() -> None:
    env = os.environ
    # Settings refuse to start without DEBUG=1 and without a key (issue 14.11); the tests and
    # the servers they start run as production does, with a key of this run's own.
    if not env.get("SECRET_KEY") and not env.get("SECRET_KEY_FILE"):
        env["SECRET_KEY"] = "tests-" + secrets.token_urlsafe(48)
    # A pooled connection held by live-server threads blocks dropping the test database;
    # the subprocess stacks that tests start (the web server, workers) choose their own DB_POOL.
    env.setdefault("DB_POOL", "0")
    missing: list[str] = []
    pg_url = env.get("DATABASE_URL") or PG_DEFAULT
    if pg_url.startswith("postgres") and _postgres_ok(pg_url):
        env["DATABASE_URL"] = pg_url
    else:
        env["DATABASE_URL"] = "sqlite:///" + os.path.abspath("test-db.sqlite3")
        missing.append(f"PostgreSQL at {pg_url}")
    redis_url = env.get("TEST_REDIS_URL") or env.get("REDIS_URL") or REDIS_DEFAULT
    # The test process itself runs tasks in-process; the integration tests start their own
    # web server and Celery worker with this broker.
    env.pop("REDIS_URL", None)
    if _redis_ok(redis_url):
        env["TEST_REDIS_URL"] = redis_url
    else:
        env.pop("TEST_REDIS_URL", None)
        missing.append(f"Redis at {redis_url}")
    chromium = env.get("CHROMIUM_PATH") or shutil.which("chromium") or ""
    if chromium:
        env["CHROMIUM_PATH"] = chromium
    else:
        missing.append("Chromium (Debian package 'chromium')")
    if missing:
        strict = env.get("REQUIRE_SERVICES") == "1"
        banner = "=" * 78
        print(banner, file=sys.stderr)
        print(
            (
                "REQUIRE_SERVICES=1: these tests will FAIL"
                if strict
                else "SKIPPING the tests that need"
            )
            + ": "
            + "; ".join(missing),
            file=sys.stderr,
        )
        print(banner, file=sys.stderr)
    os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[1:]])  # noqa: S606


if __name__ == "__main__":
    main()
