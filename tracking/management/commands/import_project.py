"""`manage.py import_project FILE --team SLUG`: load an export_project file into a team."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.errors import ApplicationError
from tracking.portability import format, load, progress, sections
from tracking.validation import clean_slug


class Command(BaseCommand):
    help = (
        "Load a file written by export_project (plain or gzipped; - reads stdin) into a team,"
        " all or nothing. Authors are matched by username among the team's members; the"
        " others become --user (default: the team's first owner). An existing project is"
        " never overwritten."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", metavar="FILE", help="The export: a path, or - for stdin.")
        parser.add_argument("--team", required=True, metavar="SLUG", help="The team to load into.")
        parser.add_argument(
            "--project", metavar="NEW_SLUG", help="The project's name (default: the file's)."
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="Who owns what authors outside the team wrote (default: the team's first owner).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            slug = options["project"] and clean_slug(
                options["project"], field="--project", max_length=100
            )
            team = load.team_for_import(options["team"])
            user = load.importer_for(team, options["user"])
            summary = self.load(path, team=team, user=user, slug=slug)
        except ApplicationError as error:
            raise CommandError(f"{error.field}: {error.message}") from None
        except format.PortabilityError as error:
            raise CommandError(str(error)) from None
        for warning in summary.warnings:
            self.stderr.write(f"Note: {warning}", style_func=self.style.WARNING)
        self.stdout.write(f"Imported {summary.project} from {path}: {summary.describe()}.")

    def load(self, path: str, **target: Any) -> sections.Summary:
        with format.open_input(path, sys.stdin) as source:
            bar = progress.progress_bar(
                desc=f"import {path}",
                unit="B" if source.size is not None else "lines",
                total=source.size,
                stream=self.stderr,
            )
            try:
                return load.project_import(source=source, progress=bar.update, **target)
            finally:
                bar.close()
