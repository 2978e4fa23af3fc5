"""The browser key: a random cookie that proves a request comes from the enrolling browser.

Issue 14.2: a recruiter id is not a credential. The consent page gives each browser a
random key (only its SHA-256 is stored, on the identity it enrols); the same browser
coming back with the same id resumes that participant, any other gets a new one.
"""

from collections.abc import Mapping

from trials.services.responses import token_wellformed

BROWSER_COOKIE = "bw_browser"
BROWSER_COOKIE_AGE = 400 * 86400  # browsers cap cookie lifetimes at 400 days


def browser_key(cookies: Mapping[str, str]) -> str | None:
    """This browser's key, if its cookies hold a well-formed one."""
    key = cookies.get(BROWSER_COOKIE, "")
    return key if token_wellformed(key) and len(key) >= 32 else None
