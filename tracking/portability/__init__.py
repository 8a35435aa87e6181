"""Moving a project in and out of Labbook as one JSON Lines file.

``export.project_export`` writes a project (its runs, metric points, reports,
comments and alert rules) to a stream; ``load.project_import`` reads such a
stream back into a team, all or nothing. The line format is in ``format``;
what each app contributes is a ``sections.Section``: ``tracking`` brings the
project, its runs and their points (``runs``), and the apps that build on it
bring their own (``reports_app.portability``, ``alerts.portability``),
discovered the way Django's admin finds ``admin`` modules, so ``tracking``
never imports them.
"""

from tracking.portability import (  # noqa: F401 - each registers its section
    datasets,
    run_media,
    runs,
)
