"""Container health check: GET /healthz from the app in this container; exit 0 on 200 only.

Plain Python without Django: `docker exec` skips the entrypoint, and loading the project would
cost seconds on every probe. The Host header is one the app accepts (the first concrete entry
of ALLOWED_HOSTS), and redirects are not followed: a 301 to https://<public host>/ would
otherwise test the public site instead of this container.
"""

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def host_header() -> str:
    """A host name that Django's ALLOWED_HOSTS check accepts."""
    for entry in os.environ.get("ALLOWED_HOSTS", "").split(","):
        host = entry.strip().lstrip(".")
        if host and "*" not in host:
            return host
    return "localhost"


def main(argv: list[str]) -> int:
    url = argv[0] if argv else DEFAULT_URL
    # The URL comes from the HEALTHCHECK line, not from a user.
    request = urllib.request.Request(url, headers={"Host": host_header()})  # noqa: S310
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=8) as response:
            status = response.status
            body = response.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(2000).decode("utf-8", "replace")
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: {status} {body}", file=sys.stdout if status == 200 else sys.stderr)
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
