"""Labbook's Python SDK: log from training code without slowing it down or losing a point.

    from tracking import sdk

    with sdk.init(project="team/project", config={"lr": 3e-4}) as run:
        for step in range(1000):
            run.log({"loss": loss, "acc": acc})

Standard library only (psutil, if installed, adds the ``system/*`` series:
tracking/sdk/system_metrics.py; numpy and Pillow, if installed, log arrays as images:
tracking/sdk/media.py); safe to import without Django. ``LABBOOK_URL`` and
``LABBOOK_TOKEN`` say where to send; see docs/sdk.md for every setting. What the
script prints (stdout, stderr) is kept with the run too: tracking/sdk/console.py.
"""

from __future__ import annotations

from tracking.sdk.api import Api
from tracking.sdk.media import Histogram, Image, Table, Text
from tracking.sdk.run import LabbookError, Run, init, use_artifact

# Labbook's version, the server's and the SDK's: both pyproject.toml files read it from here.
__version__ = "0.1.0"

__all__ = [
    "Api",
    "Histogram",
    "Image",
    "LabbookError",
    "Run",
    "Table",
    "Text",
    "__version__",
    "init",
    "use_artifact",
]
