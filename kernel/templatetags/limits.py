"""``{% max_length "app.Model.field" %}``: a form input's ``maxlength`` from the model field."""

from __future__ import annotations

from django import template

from kernel.limits import max_length_of

register = template.Library()


@register.simple_tag
def max_length(path: str) -> int:
    return max_length_of(path)
