"""`manage.py export_project TEAM/PROJECT FILE`: write a project to one JSON Lines file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.errors import ApplicationError
from tracking.models import Project
from tracking.portability import export, format, progress
from tracking.portability.sections import Summary


class Command(BaseCommand):
    help = (
        "Write a project (runs, metric points, reports with their revisions, comments, alert"
        " rules) to FILE as JSON Lines; FILE may be - (stdout) and is gzipped when it ends in"
        " .gz. Read it back with import_project."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("project", metavar="TEAM/PROJECT", help="The project to export.")
        parser.add_argument("file", metavar="FILE", help="Where to write: a path, or - for stdout.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = options["file"]
        try:
            project = export.project_for_export(options["project"])
            summary = self.write(project, path)
        except (format.PortabilityError, ApplicationError) as error:
            raise CommandError(str(error)) from None
        except BrokenPipeError:  # `export_project ... - | head`: the reader left
            raise CommandError("stdout was closed before the export was complete.") from None
        message = f"Exported {summary.project} to {path}: {summary.describe()}."
        if path == "-":  # stdout is the file: the summary goes to stderr (not styled as an error)
            self.stderr.write(message, style_func=str)
        else:
            self.stdout.write(message)

    def write(self, project: Project, path: str) -> Summary:
        bar = progress.progress_bar(
            desc=f"export {project.full_name}",
            unit="records",
            total=export.export_size(project),
            stream=self.stderr,
        )
        try:
            with format.open_output(path, self.stdout) as stream:
                return export.project_export(project=project, stream=stream, progress=bar.update)
        finally:
            bar.close()
