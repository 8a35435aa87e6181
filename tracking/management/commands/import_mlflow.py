"""`manage.py import_mlflow --tracking-uri URI`: copy MLflow experiments and runs into Labbook."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.errors import ApplicationError
from tracking.mlflow import importer
from tracking.models import Team
from tracking.portability.format import PortabilityError
from tracking.portability.load import importer_for


class Command(BaseCommand):
    help = (
        "Copy experiments, runs, params, tags and full metric histories (and with --artifacts"
        " the artifacts) from an MLflow tracking server or store into a Labbook team."
        " Safe to run again: what was copied before is recognised, nothing is duplicated."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tracking-uri",
            required=True,
            metavar="URI",
            help="http(s)://host:port of an MLflow server, sqlite:///path/mlflow.db,"
            " or a mlruns folder.",
        )
        parser.add_argument(
            "--experiment",
            action="append",
            default=[],
            metavar="NAME",
            help="Import only this experiment (repeatable); default: every active one.",
        )
        parser.add_argument(
            "--team",
            metavar="SLUG",
            help="The Labbook team to import into (needed when there is more than one).",
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="Who the imported runs belong to (default: the team's first owner).",
        )
        parser.add_argument(
            "--artifacts", action="store_true", help="Also copy each run's artifacts."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        team = self.team(options["team"])
        user = self.user(team, options["user"])
        try:
            client = importer.client_for(options["tracking_uri"])
            summary = importer.import_all(
                client,
                user=user,
                team=team,
                experiment_names=options["experiment"],
                with_artifacts=options["artifacts"],
                on_experiment=self.progress_bar,
            )
        except (importer.ImportFailed, ApplicationError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {summary.experiments} experiment(s) into {team.slug}:"
                f" {summary.runs_created} new run(s), {summary.runs_updated} already there"
                f" (completed), {summary.points} metric point(s), {summary.params} param(s)"
                + (f", {summary.artifacts} artifact file(s)" if options["artifacts"] else "")
                + "."
            )
        )

    def team(self, slug: str | None) -> Team:
        if slug:
            team = Team.objects.filter(slug=slug).first()
            if team is None:
                raise CommandError(f"--team: there is no team {slug!r}.")
            return team
        teams = list(Team.objects.all()[:2])
        if len(teams) != 1:
            raise CommandError("--team: say which team to import into.")
        return teams[0]

    def user(self, team: Team, username: str | None) -> Any:
        """Who owns the runs: ``--user`` (a writer of the team), else its first owner."""
        try:
            return importer_for(team, username)
        except PortabilityError as error:
            raise CommandError(str(error)) from None

    def progress_bar(self, experiment: str, runs: int) -> importer.Progress:
        """A tqdm bar per experiment on stderr (quiet when stderr is not a terminal)."""
        from tqdm import tqdm

        bar = tqdm(total=runs, desc=experiment, unit="run", file=sys.stderr, disable=None)

        def tick(count: int) -> None:
            bar.update(count)
            if bar.n >= runs:  # the bar's total
                bar.close()

        if runs == 0:
            bar.close()
        return tick
