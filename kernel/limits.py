"""Limits come from the model fields: what a column holds is what an input may carry.

A text limit is written once, on the model field (``max_length``). The
services check input against it, the API schema documents it and the forms'
``maxlength`` shows it, each by reading the field (``{% max_length %}`` in
templates), so the four can no longer disagree.
"""

from __future__ import annotations

from django.apps import apps
from django.db.models import Model


def max_length(model: type[Model], name: str) -> int:
    """The ``max_length`` of ``model``'s field ``name``."""
    length = getattr(model._meta.get_field(name), "max_length", None)
    if length is None:
        raise LookupError(f"{model._meta.label}.{name} has no max_length")
    return int(length)


def max_length_of(path: str) -> int:
    """``max_length("alerts.AlertRule.name")``: the same, named as templates name it."""
    app_label, model_name, name = path.split(".")
    return max_length(apps.get_model(app_label, model_name), name)
