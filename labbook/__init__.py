"""The Labbook Django project: settings, URLs, ASGI, the Celery app and ``manage.py up``.

The one package that may import every app; none imports it (``labbook.settings``
is read through ``django.conf.settings``).
"""

from labbook.celery import app as celery_app

__all__ = ["celery_app"]
