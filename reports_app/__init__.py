"""Reports: Markdown documents about runs with live charts, their revisions and share links,
comments on runs and reports, and the live updates of both (websockets)."""
