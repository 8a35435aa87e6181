"""Tokens in URLs never reach a log file: ``/s/<token>`` is logged as ``/s/<prefix>…``.

A share token is a password to a report; an invitation's token
(``/settings/invitations/link/<token>/``) finds who was invited to which team.
The access log (``up --access-log``) and Django's request warnings write paths
as they came; this filter keeps a token's first 8 characters (as the
share-link list shows them) and drops the rest.
"""

from __future__ import annotations

import logging
import re

SHARE_PATH = re.compile(r"(/(?:s|invitations/link)/[A-Za-z0-9_-]{1,8})[A-Za-z0-9_-]*")


def redact(text: str) -> str:
    return SHARE_PATH.sub(r"\1…", text)


class RedactShareTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install(*logger_names: str) -> None:
    """Add the filter to loggers whose handlers are not ours (uvicorn's access log)."""
    for name in logger_names:
        logging.getLogger(name).addFilter(RedactShareTokens())
