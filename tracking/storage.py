"""Where a run's files live on disk: ``LABBOOK_HOME/artifacts/<project id>/<run id>/artifacts/``.

Read at call time (tests point ``LABBOOK_HOME`` elsewhere); every module that
touches artifact files goes through here.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)


def project_folder(project_id: int) -> Path:
    return settings.LABBOOK_HOME / "artifacts" / str(int(project_id))


def run_folder(project_id: int, run_id: int) -> Path:
    return project_folder(project_id) / str(int(run_id)) / "artifacts"


def remove_project_files(project_id: int) -> None:
    """Delete a deleted project's files; a failure is logged (the rows are gone already)."""
    try:
        shutil.rmtree(project_folder(project_id))
    except FileNotFoundError:
        pass  # it never had files
    except OSError as error:
        logger.warning("could not remove the files of deleted project %s: %s", project_id, error)
