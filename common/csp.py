"""Content-Security-Policy on every response (Django 5.2 has no built-in CSP).

Only the site's own files may run: no inline script, no inline style, no CDN. Pages pass data
to their scripts in `json_script` blocks, and scripts bind their own event handlers.

vega-embed needs no 'unsafe-eval' as long as the dashboard embeds with `{ast: true}`: vega then
evaluates expressions with the interpreter that vega-embed 7 bundles instead of compiling them
with `new Function`. Two more things in vega would still need 'unsafe-eval' or
'unsafe-inline', so the dashboard avoids them: CSV/TSV data (d3-dsv builds its row parser with
`new Function`; load JSON instead) and vega-embed's and vega-tooltip's injected <style>
elements (`defaultStyle: false`, `tooltip: {disableDefaultStyle: true}`, and a stylesheet
under static/).
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """Add the policy to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        # Django's own debug pages (traceback, URL list) are built with inline script and
        # style; under DEBUG they would show unstyled and inert.
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
