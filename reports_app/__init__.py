"""The Labbook Django project package (settings, urls, asgi, Celery app) and the reports feature."""

from reports_app.celery import app as celery_app

__all__ = ["celery_app"]
