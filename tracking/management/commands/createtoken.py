"""`manage.py createtoken USER`: print a new API token, for scripts and CI."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.errors import ApplicationError
from tracking.bootstrap import DEFAULT_TOKEN_NAME, IssuedToken, token_issue
from tracking.models import Role

# Errors name the option the user typed rather than the service's field.
OPTION_OF_FIELD = {
    "team": "--team: ",
    "role": "--role: ",
    "name": "--name: ",
    "username": "username: ",
}


class Command(BaseCommand):
    help = (
        "Create an API token for USERNAME and print it, alone, on stdout"
        " (TOKEN=$(python manage.py createtoken ci)); notes go to stderr. The user is created"
        " when missing (without a password), and with --team the user joins that team."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="Who the token acts as; created when missing.")
        parser.add_argument(
            "--team",
            metavar="SLUG",
            help="Team to put the user in; a new team is created with the user as its owner.",
        )
        parser.add_argument(
            "--role",
            choices=Role.values,
            help="The user's role in an existing --team (default: editor for a newcomer;"
            " a member keeps their role).",
        )
        parser.add_argument(
            "--name", default="", help=f"Label of the token (default: {DEFAULT_TOKEN_NAME!r})."
        )

    def handle(
        self,
        *args: Any,
        username: str,
        team: str | None,
        role: str | None,
        name: str,
        **options: Any,
    ) -> None:
        if role is not None and team is None:
            raise CommandError("--role needs --team: a role is held in a team.")
        try:
            issued = token_issue(username=username, team_slug=team, role=role, name=name)
        except ApplicationError as error:
            where = OPTION_OF_FIELD.get(error.field or "", "")
            raise CommandError(f"{where}{error.message}") from None
        if options["verbosity"] > 0:
            for note in notes(issued, username=username, team=team, role=role):
                self.stderr.write(note, style_func=lambda text: text)
        self.stdout.write(issued.token)


def notes(issued: IssuedToken, *, username: str, team: str | None, role: str | None) -> list[str]:
    lines: list[str] = []
    if issued.user_created:
        lines.append(f"Created user {username!r} (no password: it signs in with tokens only).")
    if issued.team_created:
        lines.append(f"Created team {team!r} with {username!r} as its owner.")
        if role not in (None, Role.OWNER):
            lines.append(f"(--role {role} ignored: a new team's first member is its owner.)")
    elif team is not None:
        lines.append(f"{username!r} is {issued.role} in team {team!r}.")
    return lines
