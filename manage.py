#!/usr/bin/env python
"""Labbook's command-line entry point: `python manage.py up` runs everything.

The settings are loaded here, before Django's command machinery: every
environment variable is read and checked then, and a bad one ends start-up
with one line, ``labbook: <what is wrong>``, and exit code 2. Left to Django,
the same error would surface as a traceback about an unknown command.
"""

import os
import sys

EXIT_BAD_SETTINGS = 2


def settings_error() -> str | None:
    """Load the settings; what is wrong with them, on one line, or None."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 - the first access imports the settings module
    except ImproperlyConfigured as error:
        return " ".join(str(error).split())
    except ImportError as error:  # a DJANGO_SETTINGS_MODULE that is not there
        return f"cannot load the settings: {error}"
    return None


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labbook.settings")
    problem = settings_error()
    if problem is not None:
        print(f"labbook: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_SETTINGS)
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
