"""Container entrypoint: make sure there is a SECRET_KEY, then exec the command.

A lab machine that sets neither SECRET_KEY nor SECRET_KEY_FILE gets a random key, generated
once into the `appdata` volume and shared by every container of the stack, so sessions survive
restarts and no key is ever written in a file of this repository. Written in Python, not sh,
so a checkout with CRLF line ends or without exec bits still works.
"""

import os
import secrets
import sys

GENERATED_KEY = "/var/lib/belief-web/secret_key"


def generated_key_file(path: str) -> str:
    """The path of a key file, created with a new random key if it does not exist yet."""
    if not os.path.exists(path):
        temporary = f"{path}.{os.getpid()}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(64))
        try:
            # Atomic, and refuses to replace: of two containers starting at once, one key wins.
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: entrypoint.py COMMAND [ARG...]")
    if not os.environ.get("SECRET_KEY") and not os.environ.get("SECRET_KEY_FILE"):
        path = os.environ.get("GENERATED_SECRET_KEY_FILE") or GENERATED_KEY
        os.environ["SECRET_KEY_FILE"] = generated_key_file(path)
    os.execvp(argv[0], argv)  # noqa: S606 - the command replaces this process, as PID 1


if __name__ == "__main__":
    main(sys.argv[1:])
