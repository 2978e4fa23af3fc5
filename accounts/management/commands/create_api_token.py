"""`manage.py create_api_token USERNAME [--scope read|write] [--expires-days N | --no-expiry]`."""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import ApiToken
from accounts.services import DEFAULT_EXPIRES_DAYS, token_create


class Command(BaseCommand):
    help = "Create a researcher API token; the token is printed once, as the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--scope", choices=ApiToken.Scope.values, default=ApiToken.Scope.READ)
        expiry = parser.add_mutually_exclusive_group()
        expiry.add_argument(
            "--expires-days",
            type=int,
            default=DEFAULT_EXPIRES_DAYS,
            help=f"days until the token lapses (default {DEFAULT_EXPIRES_DAYS})",
        )
        expiry.add_argument("--no-expiry", action="store_true", help="a token that never expires")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        days = None if options["no_expiry"] else options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be at least 1")
        new = token_create(
            user=user, scope=options["scope"], name=options["name"], expires_days=days
        )
        expiry = new.token.expires_at.isoformat() if new.token.expires_at else "never"
        self.stdout.write(
            f"API token {new.token.prefix}… for {user.get_username()} "
            f"(scope {new.token.scope}, expires {expiry}). It is shown once: keep it now."
        )
        self.stdout.write(new.key)
