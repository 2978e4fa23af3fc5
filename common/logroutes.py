"""What the access log may say about a URL: the route, never a token or a recruiter's id.

Participant URLs carry the credential in the path (/t/<session token>/, /r/<participant
token>/, the session API) and recruiters put the participant's id in the query
(PROLIFIC_PID=..., sona_id=...). gunicorn.conf.py's logger writes `log_route` of the path
and the referer instead: tokens become `<token>`, a query keeps its parameter names only.
"""

import re
from urllib.parse import parse_qsl, urlsplit

_TOKEN_IN_PATH = re.compile(r"^(/t/|/r/|/api/v1/sessions/|/api/v1/participants/)[^/?]+")


def log_route(path: str, query: str = "") -> str:
    """The path with tokens masked, and the query's parameter names without their values."""
    route = _TOKEN_IN_PATH.sub(r"\1<token>", path)
    if query:
        names = [name for name, _value in parse_qsl(query, keep_blank_values=True)][:20]
        route += "?" + "&".join(f"{name[:40]}=" for name in names)
    return route


def log_url(url: str) -> str:
    """A whole URL (a Referer) as log_route writes it."""
    if not url or url == "-":
        return url
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
    return origin + log_route(parts.path, parts.query)
