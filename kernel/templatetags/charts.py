"""``{% plotly_script %}``: the one ``<script>`` that loads plotly.js (``PLOTLY_JS``)."""

from __future__ import annotations

from django import template
from django.templatetags.static import static
from django.utils.html import format_html

from kernel.charts import PLOTLY_JS

register = template.Library()


@register.simple_tag
def plotly_script() -> str:
    return format_html('<script src="{}" defer></script>', static(PLOTLY_JS))
