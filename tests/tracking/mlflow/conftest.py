"""The mlflow package phones home (usage telemetry) unless told not to: these tests never do.

Set at import, so every client here and every process the tests start
(Labbook servers, `mlflow server`, the example script) inherits it.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
