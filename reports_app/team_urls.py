"""Routes of the settings pages and the team page (included by ``reports_app.urls``).

``fixed_patterns`` start with a fixed word (``settings/``) and are included
before the catch-all team/project routes; ``team_patterns`` start with a team
slug and are included after every fixed route.
"""

from __future__ import annotations

fixed_patterns: list = []
team_patterns: list = []
