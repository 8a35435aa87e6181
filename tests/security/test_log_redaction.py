"""Share-link tokens never reach a log (security review: they were in the access log)."""

from __future__ import annotations

import logging

import labbook.asgi  # noqa: F401  (installs the filter on uvicorn's loggers, as `up` runs it)
from labbook.log_redaction import redact

TOKEN = "s_Abc123xyzSECRETpartOfTheToken00"


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_access_log_cuts_a_share_token_to_its_prefix():
    logger = logging.getLogger("uvicorn.access")
    keep = Keep()
    logger.addHandler(keep)
    try:
        logger.warning(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/s/{TOKEN}", "1.1", 200
        )
    finally:
        logger.removeHandler(keep)
    (line,) = keep.lines
    assert "SECRETpartOfTheToken" not in line
    assert "/s/s_Abc123…" in line


def test_every_handler_of_labbooks_own_logs_redacts(settings):
    handlers = settings.LOGGING["handlers"]
    assert handlers and all("share_tokens" in handler["filters"] for handler in handlers.values())


def test_only_share_paths_are_touched():
    assert redact("GET /static/app.js") == "GET /static/app.js"
    assert redact(f"GET /s/{TOKEN}/blocks/0") == "GET /s/s_Abc123…/blocks/0"


def test_an_invitation_token_is_cut_to_its_prefix_too():
    path = "/settings/invitations/link/lbi_Abc1SECRETpartOfTheToken/"
    assert redact(f"GET {path}") == "GET /settings/invitations/link/lbi_Abc1…/"
